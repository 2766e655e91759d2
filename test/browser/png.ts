/**
 * Just enough PNG decoding for screenshots: 8-bit RGB or RGBA, not interlaced (what Chromium
 * writes). The zlib stream is inflated by fflate; the five scanline filters are undone here.
 */
import { unzlibSync } from 'fflate';

export interface Rgba {
  width: number;
  height: number;
  /** 4 bytes per pixel, rows top to bottom. */
  data: Uint8Array;
}

export function decodePng(png: Uint8Array): Rgba {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (!sig.every((b, i) => png[i] === b)) throw new Error('not a PNG');
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= png.length; ) {
    const len = dv.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const body = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = dv.getUint32(at + 8);
      height = dv.getUint32(at + 12);
      const depth = body[8];
      const color = body[9];
      const interlace = body[12];
      if (depth !== 8 || (color !== 2 && color !== 6) || interlace !== 0) throw new Error(`PNG: unsupported depth ${depth}, colour type ${color}, interlace ${interlace}`);
      channels = color === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    at += 12 + len;
  }
  const joined = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  idat.reduce((o, c) => (joined.set(c, o), o + c.length), 0);
  const raw = unzlibSync(joined);
  const stride = width * channels;
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = rows.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? rows.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels]! : 0;
      const b = up[x]!;
      const c = x >= channels ? up[x - channels]! : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`PNG: bad filter ${filter} on row ${y}`);
      out[x] = (src[x]! + pred) & 255;
    }
  }
  const data = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    data[4 * p] = rows[channels * p]!;
    data[4 * p + 1] = rows[channels * p + 1]!;
    data[4 * p + 2] = rows[channels * p + 2]!;
    data[4 * p + 3] = channels === 4 ? rows[channels * p + 3]! : 255;
  }
  return { width, height, data };
}

export interface PixelStats {
  /** Fraction of pixels brighter than near-black. */
  lit: number;
  /** Fraction of pixels with a clear hue: max − min channel above 40 of 255. */
  coloured: number;
}

/** Statistics over the rectangle [x0, x1) × [y0, y1) of an image. */
export function pixelStats(img: Rgba, x0 = 0, y0 = 0, x1 = img.width, y1 = img.height): PixelStats {
  let lit = 0;
  let coloured = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = 4 * (y * img.width + x);
      const r = img.data[i]!;
      const g = img.data[i + 1]!;
      const b = img.data[i + 2]!;
      if (Math.max(r, g, b) > 24) lit++;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
    }
  }
  const n = Math.max(1, (x1 - x0) * (y1 - y0));
  return { lit: lit / n, coloured: coloured / n };
}

/** Fraction of the rectangle's pixels that have a clear hue in `after` but not in `before` (same size). */
export function newlyColoured(before: Rgba, after: Rgba, x0 = 0, y0 = 0, x1 = after.width, y1 = after.height): number {
  if (before.width !== after.width || before.height !== after.height) throw new Error('newlyColoured: images differ in size');
  const hue = (img: Rgba, i: number) => Math.max(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!) - Math.min(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!) > 40;
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = 4 * (y * after.width + x);
      if (hue(after, i) && !hue(before, i)) n++;
    }
  }
  return n / Math.max(1, (x1 - x0) * (y1 - y0));
}
