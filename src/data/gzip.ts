/** gzip inflation with the CRC-32 and length checks fflate leaves out, and errors that name the file. */
import { gunzipSync } from 'fflate';
import { crc32 } from '../io/crc32.js';
import { DataError } from './errors.js';

export function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Inflates one gzip member; a damaged, truncated or multi-member stream is an error naming `name`. */
export function gunzipChecked(bytes: Uint8Array, name: string): Uint8Array {
  if (!isGzip(bytes)) throw new DataError(`${name}: not gzip data (no 1f 8b magic)`);
  if (bytes.length < 18) throw new DataError(`${name}: corrupt gzip: only ${bytes.length} bytes`);
  let out: Uint8Array;
  try {
    out = gunzipSync(bytes);
  } catch (e) {
    throw new DataError(`${name}: corrupt gzip (${e instanceof Error ? e.message : String(e)}; damaged or truncated file)`, { cause: e });
  }
  const t = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8);
  if (out.length % 2 ** 32 !== t.getUint32(4, true) || crc32(out) !== t.getUint32(0, true)) {
    throw new DataError(`${name}: corrupt gzip: CRC or length check failed (damaged or truncated file, or a multi-member gzip, which is not supported)`);
  }
  return out;
}
