/**
 * Padding for R2 multipart parts made of gzip.
 *
 * R2 needs every part but the last to be exactly the same size. A chunk's
 * compressed bytes rarely end on a part boundary, so the gap is filled with
 * empty gzip members: concatenated members are one valid gzip file (RFC 1952
 * §2.2) and an empty member decompresses to nothing. Each member carries an
 * FEXTRA field whose length makes the padding exact. Readers checked: gzip -d,
 * Python's gzip, Node's zlib and DuckDB's read_json. DuckDB refuses a member
 * with a large FEXTRA and any FCOMMENT, so padding uses several FEXTRA members
 * of at most MAX_MEMBER_BYTES each and never FCOMMENT.
 */

/**
 * Largest padding member. DuckDB 1.5 refuses a member over 32 KiB ("Extra
 * field resulting in GZIP header larger than defined maximum"); measured
 * here, a member of exactly 32 768 bytes (XLEN 32 746) is read and one of
 * 32 770 is refused.
 */
export const MAX_MEMBER_BYTES = 32 * 1024;
/** An empty member with an FEXTRA field of length 0. */
export const MIN_MEMBER_BYTES = 22;
/** An FEXTRA field with one subfield needs 4 bytes of subfield header. */
const SUBFIELD_HEADER = 4;
const MIN_SUBFIELD_MEMBER = MIN_MEMBER_BYTES + SUBFIELD_HEADER;

/** Subfield id "PD" (padding): any SI1/SI2 pair with SI2 != 0 is allowed. */
const SI1 = 0x50;
const SI2 = 0x44;

/**
 * Whether a member of exactly `size` bytes exists. The extra field is either
 * empty (22 bytes) or one well-formed subfield (26 bytes and up), so 23–25
 * are impossible.
 */
function isMemberSize(size: number): boolean {
  return size === MIN_MEMBER_BYTES || (size >= MIN_SUBFIELD_MEMBER && size <= MAX_MEMBER_BYTES);
}

/** One empty gzip member of exactly `size` bytes. */
export function emptyMember(size: number): Uint8Array {
  if (!isMemberSize(size)) throw new RangeError(`no empty gzip member has ${size} bytes`);
  const xlen = size - MIN_MEMBER_BYTES;
  const member = new Uint8Array(size); // zero-filled: MTIME, CRC32 and ISIZE are 0
  member.set([0x1f, 0x8b, 8, 0x04 /* FLG.FEXTRA */, 0, 0, 0, 0, 0, 255 /* OS unknown */]);
  member[10] = xlen & 0xff;
  member[11] = xlen >> 8;
  if (xlen > 0) {
    const len = xlen - SUBFIELD_HEADER;
    member.set([SI1, SI2, len & 0xff, len >> 8], 12);
  }
  // A final fixed-Huffman block holding only end-of-block: an empty deflate stream.
  member.set([0x03, 0x00], 12 + xlen);
  return member;
}

/** Whether a gap of `gap` bytes can be filled exactly with empty members. */
export function canPad(gap: number): boolean {
  return gap === 0 || gap === MIN_MEMBER_BYTES || gap >= MIN_SUBFIELD_MEMBER;
}

/**
 * The sizes of the members that fill `gap` bytes exactly, largest first,
 * never leaving a remainder that no member can fill.
 */
export function paddingMemberSizes(gap: number): number[] {
  if (!Number.isInteger(gap) || !canPad(gap)) throw new RangeError(`cannot pad a gap of ${gap} bytes`);
  const sizes: number[] = [];
  let left = gap;
  while (left > 0) {
    if (left <= MAX_MEMBER_BYTES) {
      sizes.push(left);
      break;
    }
    const rest = left - MAX_MEMBER_BYTES;
    const size = rest >= MIN_SUBFIELD_MEMBER ? MAX_MEMBER_BYTES : left - MIN_SUBFIELD_MEMBER;
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/**
 * Why `bytes` are not a run of empty gzip members as emptyMember writes them
 * (each decompresses to nothing), or null. Scrub uses it to check the
 * padding after a chunk's member: a reader of the whole object decompresses
 * that too, so a damaged padding member breaks the archive as surely as a
 * damaged row.
 */
export function emptyMembersProblem(bytes: Uint8Array): string | null {
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < MIN_MEMBER_BYTES) return `${bytes.byteLength - at} stray bytes at ${at}`;
    if (bytes[at] !== 0x1f || bytes[at + 1] !== 0x8b || bytes[at + 2] !== 8 || bytes[at + 3] !== 0x04) {
      return `no empty gzip member header at ${at}`;
    }
    const xlen = (bytes[at + 10] as number) | ((bytes[at + 11] as number) << 8);
    const end = at + MIN_MEMBER_BYTES + xlen;
    if (end > bytes.byteLength) return `the member at ${at} runs past the padding`;
    const deflate = at + 12 + xlen;
    if (bytes[deflate] !== 0x03 || bytes[deflate + 1] !== 0x00) return `the member at ${at} is not empty`;
    for (let i = deflate + 2; i < end; i++)
      if (bytes[i] !== 0) return `the member at ${at} has a CRC or size that is not 0`;
    at = end;
  }
  return null;
}
