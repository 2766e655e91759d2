/** A tiny ustar / ar writer for building archives in tests (independent of the readers). */

export interface TarFile {
  name: string;
  data: Uint8Array | string;
  type?: string;
  /** Write the name through a GNU 'L' long-name record. */
  gnuLongName?: boolean;
}

function octal(v: number, len: number): string {
  return v.toString(8).padStart(len - 1, '0') + '\0';
}

function header(name: string, size: number, type: string): Uint8Array {
  const h = new Uint8Array(512);
  const put = (at: number, s: string) => {
    for (let i = 0; i < s.length; i++) h[at + i] = s.charCodeAt(i);
  };
  put(0, name.slice(0, 100));
  put(100, octal(0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(1347631930, 12));
  put(148, '        ');
  put(156, type);
  put(257, 'ustar\u000000');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  put(148, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

export function writeTar(files: TarFile[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  const add = (name: string, data: Uint8Array, type: string) => {
    parts.push(header(name, data.length, type));
    parts.push(data);
    if (data.length % 512) parts.push(new Uint8Array(512 - (data.length % 512)));
  };
  for (const f of files) {
    const data = typeof f.data === 'string' ? enc.encode(f.data) : f.data;
    if (f.gnuLongName) add('././@LongLink', enc.encode(f.name + '\0'), 'L');
    add(f.gnuLongName ? f.name.slice(0, 99) : f.name, data, f.type ?? '0');
  }
  parts.push(new Uint8Array(1024));
  return concatBytes(parts);
}

export function writeAr(members: { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [enc.encode('!<arch>\n')];
  for (const m of members) {
    const hdr = m.name.padEnd(16) + '0'.padEnd(12) + '0'.padEnd(6) + '0'.padEnd(6) + '100644'.padEnd(8) + String(m.data.length).padEnd(10) + '`\n';
    parts.push(enc.encode(hdr), m.data);
    if (m.data.length % 2) parts.push(enc.encode('\n'));
  }
  return concatBytes(parts);
}

/** The parts end to end in one array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
