import { createHmac } from 'node:crypto';
import { SecretValue } from './secret-value.ts';

/**
 * A keyed fingerprint of a file set's content, for status, audit and the restart decision, in
 * place of the content itself. HMAC-SHA256 under a key the caller holds (the operator's own key,
 * never stored next to the result), so the fingerprint of a low-entropy secret cannot be brute
 * forced from status. Stable over file order; each path and content is length-prefixed so no two
 * different file sets share an input. Output: `hmac-sha256:<64 hex digits>`.
 */

export interface HmacFile {
  /** Path inside the volume. */
  readonly path: string;
  readonly content: SecretValue | Uint8Array;
}

/** Fewer bytes than this would make the key guessable. */
export const minContentHmacKeyBytes = 16;

export function contentHmac(key: SecretValue, files: Iterable<HmacFile>): string {
  const keyBytes = key.reveal();
  if (keyBytes.byteLength < minContentHmacKeyBytes) {
    throw new RangeError(`content HMAC key must be at least ${minContentHmacKeyBytes} bytes`);
  }
  const sorted = [...files].sort((a, b) => compareBytes(utf8(a.path), utf8(b.path)));
  const hmac = createHmac('sha256', keyBytes);
  keyBytes.fill(0);
  hmac.update(u64(sorted.length));
  let previous: string | undefined;
  for (const file of sorted) {
    if (file.path === previous) throw new Error('content HMAC: duplicate path in file set');
    previous = file.path;
    const path = utf8(file.path);
    const content = file.content instanceof SecretValue ? file.content.reveal() : file.content;
    hmac.update(u64(path.byteLength));
    hmac.update(path);
    hmac.update(u64(content.byteLength));
    hmac.update(content);
    if (file.content instanceof SecretValue) content.fill(0);
  }
  return `hmac-sha256:${hmac.digest('hex')}`;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/** Byte-wise order, so the result does not depend on the locale or on UTF-16 code units. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.byteLength - b.byteLength;
}
