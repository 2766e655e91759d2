/**
 * A tiny DICOM Part 10 writer for CT slices in tests, written from PS3.5/PS3.10 (independent of the
 * reader): 128-byte preamble, 'DICM', the file meta group (always Explicit VR Little Endian, with its
 * group length), then the data set in the chosen transfer syntax. Values are padded to even length
 * (UI with NUL, text with space, OB with NUL), as PS3.5 §7.1 requires.
 */
import { concatBytes } from './tar-writer';
import { deflateRawSync } from 'node:zlib';

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
} as const;

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

export interface CtSliceSpec {
  rows: number;
  columns: number;
  /** Pixel values (signed when pixelRepresentation is 1), row-major `r*columns + c`. */
  pixels: ArrayLike<number>;
  seriesUid: string;
  position: readonly number[];
  orientation: readonly number[];
  pixelSpacing: readonly number[];
  sliceThickness?: number;
  slope?: number;
  intercept?: number;
  instanceNumber?: number;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  pixelRepresentation?: 0 | 1;
  samplesPerPixel?: number;
  /** Meta TransferSyntaxUID; the data set is encoded to match (compressed ones get encapsulated pixel data). */
  transferSyntax?: string;
  /** Set the bits above BitsStored to 1, which a reader must ignore. */
  junkHighBits?: boolean;
  /** Keywords of data set elements to leave out, e.g. 'PixelData', 'ImagePositionPatient'. */
  omit?: readonly string[];
}

type Encoding = 'implicitLE' | 'explicitLE' | 'explicitBE';
interface El {
  group: number;
  element: number;
  vr: string;
  keyword: string;
  value: (le: boolean) => Uint8Array;
  /** Encapsulated pixel data: undefined length, items follow in `value`. */
  undefinedLength?: boolean;
}

/** VRs whose explicit encoding has 2 reserved bytes and a 32-bit length (PS3.5 §7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
function padded(b: Uint8Array, pad: number): Uint8Array {
  if (b.length % 2 === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  out[b.length] = pad;
  return out;
}
const text = (s: string) => () => padded(ascii(s), 0x20);
const uid = (s: string) => () => padded(ascii(s), 0);
const us = (v: number) => (le: boolean) => {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v, le);
  return b;
};
const ul = (v: number) => (le: boolean) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, le);
  return b;
};
/** A decimal string of at most 16 characters (the DS limit), shortened by precision when needed. */
export function formatDs(v: number): string {
  let s = String(v);
  for (let p = 15; s.length > 16 && p > 1; p--) s = v.toPrecision(p);
  if (s.length > 16) throw new Error(`formatDs: cannot fit ${v} in 16 characters`);
  return s;
}
const ds = (...v: number[]) => text(v.map(formatDs).join('\\'));

function encode(el: El, enc: Encoding): Uint8Array {
  const le = enc !== 'explicitBE';
  const value = el.value(le);
  const length = el.undefinedLength ? 0xffffffff : value.length;
  const long = enc === 'implicitLE' || LONG_VRS.has(el.vr);
  const head = new Uint8Array(enc === 'implicitLE' ? 8 : long ? 12 : 8);
  const dv = new DataView(head.buffer);
  dv.setUint16(0, el.group, le);
  dv.setUint16(2, el.element, le);
  if (enc === 'implicitLE') dv.setUint32(4, length, le);
  else {
    head.set(ascii(el.vr), 4);
    if (long) dv.setUint32(8, length, le);
    else dv.setUint16(6, length, le);
  }
  return concatBytes([head, value]);
}

/** An item or delimiter tag (FFFE,xxxx) with a 32-bit length, as in every encoding. */
function itemTag(element: number, length: number, le: boolean): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0xfffe, le);
  dv.setUint16(2, element, le);
  dv.setUint32(4, length, le);
  return b;
}

export function writeCtSlice(s: CtSliceSpec): Uint8Array {
  const ts = s.transferSyntax ?? TS.explicitLE;
  const native = ts === TS.implicitLE || ts === TS.explicitLE || ts === TS.deflatedLE || ts === TS.explicitBE;
  const enc: Encoding = ts === TS.implicitLE ? 'implicitLE' : ts === TS.explicitBE ? 'explicitBE' : 'explicitLE';
  const bits = s.bitsAllocated ?? 16;
  const stored = s.bitsStored ?? bits;
  const rep = s.pixelRepresentation ?? 1;
  const instance = s.instanceNumber ?? 1;
  const sopInstance = `2.25.1000${instance}`;

  const pixelWords = (le: boolean): Uint8Array => {
    const n = s.rows * s.columns;
    const out = new Uint8Array(n * (bits / 8));
    const dv = new DataView(out.buffer);
    const mask = 2 ** stored - 1;
    const junk = s.junkHighBits ? (2 ** bits - 1) ^ mask : 0;
    for (let i = 0; i < n; i++) {
      // Two's complement in `stored` bits, then any junk above them.
      const v = ((s.pixels[i]! & mask) | junk) >>> 0;
      if (bits === 8) dv.setUint8(i, v);
      else dv.setUint16(2 * i, v, le);
    }
    return out;
  };
  const pixelData: El = native
    ? { group: 0x7fe0, element: 0x0010, vr: bits === 8 ? 'OB' : 'OW', keyword: 'PixelData', value: (le) => padded(pixelWords(le), 0) }
    : {
        // PS3.5 A.4: an empty Basic Offset Table item, one fragment per frame, a sequence delimiter.
        group: 0x7fe0, element: 0x0010, vr: 'OB', keyword: 'PixelData', undefinedLength: true,
        value: (le) => {
          const frame = padded(concatBytes([Uint8Array.of(0xff, 0xd8), pixelWords(true), Uint8Array.of(0xff, 0xd9)]), 0);
          return concatBytes([itemTag(0xe000, 0, le), itemTag(0xe000, frame.length, le), frame, itemTag(0xe0dd, 0, le)]);
        },
      };

  const elements: El[] = [
    { group: 0x0008, element: 0x0016, vr: 'UI', keyword: 'SOPClassUID', value: uid(CT_IMAGE_STORAGE) },
    { group: 0x0008, element: 0x0018, vr: 'UI', keyword: 'SOPInstanceUID', value: uid(sopInstance) },
    { group: 0x0008, element: 0x0060, vr: 'CS', keyword: 'Modality', value: text('CT') },
    ...(s.sliceThickness !== undefined ? [{ group: 0x0018, element: 0x0050, vr: 'DS', keyword: 'SliceThickness', value: ds(s.sliceThickness) }] : []),
    { group: 0x0020, element: 0x000d, vr: 'UI', keyword: 'StudyInstanceUID', value: uid('2.25.2000') },
    { group: 0x0020, element: 0x000e, vr: 'UI', keyword: 'SeriesInstanceUID', value: uid(s.seriesUid) },
    { group: 0x0020, element: 0x0013, vr: 'IS', keyword: 'InstanceNumber', value: text(String(instance)) },
    { group: 0x0020, element: 0x0032, vr: 'DS', keyword: 'ImagePositionPatient', value: ds(...s.position) },
    { group: 0x0020, element: 0x0037, vr: 'DS', keyword: 'ImageOrientationPatient', value: ds(...s.orientation) },
    { group: 0x0028, element: 0x0002, vr: 'US', keyword: 'SamplesPerPixel', value: us(s.samplesPerPixel ?? 1) },
    { group: 0x0028, element: 0x0004, vr: 'CS', keyword: 'PhotometricInterpretation', value: text('MONOCHROME2') },
    { group: 0x0028, element: 0x0010, vr: 'US', keyword: 'Rows', value: us(s.rows) },
    { group: 0x0028, element: 0x0011, vr: 'US', keyword: 'Columns', value: us(s.columns) },
    { group: 0x0028, element: 0x0030, vr: 'DS', keyword: 'PixelSpacing', value: ds(...s.pixelSpacing) },
    { group: 0x0028, element: 0x0100, vr: 'US', keyword: 'BitsAllocated', value: us(bits) },
    { group: 0x0028, element: 0x0101, vr: 'US', keyword: 'BitsStored', value: us(stored) },
    { group: 0x0028, element: 0x0102, vr: 'US', keyword: 'HighBit', value: us(stored - 1) },
    { group: 0x0028, element: 0x0103, vr: 'US', keyword: 'PixelRepresentation', value: us(rep) },
    { group: 0x0028, element: 0x1052, vr: 'DS', keyword: 'RescaleIntercept', value: ds(s.intercept ?? 0) },
    { group: 0x0028, element: 0x1053, vr: 'DS', keyword: 'RescaleSlope', value: ds(s.slope ?? 1) },
    pixelData,
  ].filter((e) => !s.omit?.includes(e.keyword));
  let dataSet = concatBytes(elements.map((e) => encode(e, enc)));
  if (ts === TS.deflatedLE) dataSet = new Uint8Array(deflateRawSync(dataSet));

  const metaElements: El[] = [
    { group: 0x0002, element: 0x0001, vr: 'OB', keyword: 'FileMetaInformationVersion', value: () => Uint8Array.of(0, 1) },
    { group: 0x0002, element: 0x0002, vr: 'UI', keyword: 'MediaStorageSOPClassUID', value: uid(CT_IMAGE_STORAGE) },
    { group: 0x0002, element: 0x0003, vr: 'UI', keyword: 'MediaStorageSOPInstanceUID', value: uid(sopInstance) },
    { group: 0x0002, element: 0x0010, vr: 'UI', keyword: 'TransferSyntaxUID', value: uid(ts) },
    { group: 0x0002, element: 0x0012, vr: 'UI', keyword: 'ImplementationClassUID', value: uid('2.25.3000') },
  ];
  const meta = concatBytes(metaElements.map((e) => encode(e, 'explicitLE')));
  const groupLength = encode({ group: 0x0002, element: 0x0000, vr: 'UL', keyword: 'FileMetaInformationGroupLength', value: ul(meta.length) }, 'explicitLE');
  return concatBytes([new Uint8Array(128), ascii('DICM'), groupLength, meta, dataSet]);
}
