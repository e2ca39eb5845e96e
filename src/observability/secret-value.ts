import { inspect } from 'node:util';

const REDACTED = '[REDACTED]';

/**
 * A secret value held in memory. It never prints itself: `toString`, `JSON.stringify`,
 * `util.inspect` (and so `console.log` and winston) all give `[REDACTED]`. The bytes are reachable
 * only through {@link SecretValue.reveal}, which a grep finds at every place a value leaves memory.
 */
export class SecretValue {
  readonly #bytes: Uint8Array;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  static fromString(value: string): SecretValue {
    return new SecretValue(new TextEncoder().encode(value));
  }

  static fromBytes(value: Uint8Array): SecretValue {
    return new SecretValue(Uint8Array.from(value));
  }

  /** The size in bytes; safe to log. */
  get byteLength(): number {
    return this.#bytes.byteLength;
  }

  /** The raw bytes (a copy). Call only where the value is delivered to its entitled consumer. */
  reveal(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }

  /** The value decoded as UTF-8. Same rule as {@link SecretValue.reveal}. */
  revealText(): string {
    return new TextDecoder().decode(this.#bytes);
  }

  equals(other: SecretValue): boolean {
    const a = this.#bytes;
    const b = other.#bytes;
    if (a.byteLength !== b.byteLength) return false;
    let diff = 0;
    for (let i = 0; i < a.byteLength; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
    return diff === 0;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }

  get [Symbol.toStringTag](): string {
    return 'SecretValue';
  }
}
