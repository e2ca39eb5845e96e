import { Writable } from 'node:stream';

/** A writable stream that keeps what was written, for tests that read the real log output. */
export class CapturedOutput extends Writable {
  readonly #chunks: string[] = [];

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#chunks.push(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    callback();
  }

  /** Everything written so far, after letting winston's stream pipeline drain. */
  async text(): Promise<string> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.#chunks.join('');
  }

  /** The written JSON lines, parsed. */
  async lines(): Promise<Record<string, unknown>[]> {
    return (await this.text())
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}
