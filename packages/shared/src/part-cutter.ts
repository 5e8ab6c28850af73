import { canPad, emptyMember, paddingMemberSizes } from "./gzip-padding.ts";

export interface UploadedPart {
  partNumber: number;
  etag: string;
  size: number;
}

/** Uploads one part and resolves to its etag. The bytes may be reused after it resolves. */
export type UploadPart = (partNumber: number, bytes: Uint8Array) => Promise<string>;

export class PartsExhaustedError extends Error {
  override name = "PartsExhaustedError";
}

/**
 * Cuts a stream of gzip bytes into multipart parts of exactly `partSize`
 * bytes, holding at most one part in memory.
 *
 * A chunk owns the part numbers firstPart .. firstPart + maxParts - 1, so
 * chunks of one run upload in parallel without colliding, and a chunk that
 * compresses larger than planned spills into its next reserved number
 * (R2 allows gaps between part numbers).
 */
export class PartCutter {
  readonly parts: UploadedPart[] = [];
  /** Gzip bytes written, padding excluded. */
  gzBytes = 0;
  paddingBytes = 0;
  /** Most bytes held in the part buffer at once. */
  peakBufferedBytes = 0;

  readonly #partSize: number;
  readonly #firstPart: number;
  readonly #maxParts: number;
  readonly #upload: UploadPart;
  readonly #buffer: Uint8Array;
  #filled = 0;

  constructor(options: { partSize: number; firstPart: number; maxParts: number; upload: UploadPart }) {
    this.#partSize = options.partSize;
    this.#firstPart = options.firstPart;
    this.#maxParts = options.maxParts;
    this.#upload = options.upload;
    this.#buffer = new Uint8Array(options.partSize);
  }

  /** Appends gzip bytes, uploading each part as soon as it is full. */
  async write(bytes: Uint8Array): Promise<void> {
    this.gzBytes += bytes.byteLength;
    await this.#append(bytes);
  }

  /**
   * Uploads what is left. The object's last chunk uploads its tail as is (the
   * last part may be short); any other chunk pads its tail to a full part. A
   * gap that no set of empty members can fill (1–21 or 23–25 bytes) is grown
   * by a whole part, which then holds only padding.
   */
  async finish(isLastChunk: boolean): Promise<UploadedPart[]> {
    if (this.#filled > 0) {
      if (isLastChunk) {
        await this.#flush();
      } else {
        let gap = this.#partSize - this.#filled;
        if (!canPad(gap)) gap += this.#partSize;
        for (const size of paddingMemberSizes(gap)) {
          this.paddingBytes += size;
          await this.#append(emptyMember(size));
        }
      }
    }
    return this.parts;
  }

  async #append(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - offset, this.#partSize - this.#filled);
      this.#buffer.set(bytes.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      this.peakBufferedBytes = Math.max(this.peakBufferedBytes, this.#filled);
      if (this.#filled === this.#partSize) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.parts.length === this.#maxParts) {
      throw new PartsExhaustedError(
        `chunk needs more than its ${this.#maxParts} reserved parts of ${this.#partSize} bytes`,
      );
    }
    const partNumber = this.#firstPart + this.parts.length;
    const bytes = this.#buffer.subarray(0, this.#filled);
    const etag = await this.#upload(partNumber, bytes);
    this.parts.push({ partNumber, etag, size: bytes.byteLength });
    this.#filled = 0;
  }
}
