/**
 * Archives and the sample-CT conversion path on synthetic data: tar, XML plist, .inv3 decoding
 * (axis mapping, errors), NIfTI-1 writing (round trip through decodeNifti), and .deb extraction.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { decodeNifti } from '../../src/data/nifti';
import { decodeInv3 } from '../../src/data/inv3';
import { encodeNifti1 } from '../../src/data/nifti-write';
import { parsePlist } from '../../src/data/plist';
import { readTar } from '../../src/data/tar';
import { debDataTar, extractDebMember, readAr } from '../../src/data/deb';
import { inv3ToNifti } from '../../src/data/sample-ct';
import { writeAr, writeTar } from './tar-writer';

function mainPlist(shape: number[], spacing: number[], extra = ''): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple Computer//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>annotations</key>
	<dict>
	</dict>
	<key>matrix</key>
	<dict>
		<key>dtype</key>
		<string>int16</string>
		<key>filename</key>
		<string>matrix.dat</string>
		<key>shape</key>
		<array>
${shape.map((n) => `			<integer>${n}</integer>`).join('\n')}
		</array>
	</dict>
	<key>modality</key>
	<string>CT</string>
	<key>name</key>
	<string>Phantom &amp; co</string>
	<key>orientation</key>
	<integer>1</integer>
	<key>scalar_range</key>
	<array>
		<integer>-1024</integer>
		<integer>3033</integer>
	</array>
	<key>spacing</key>
	<array>
${spacing.map((s) => `		<real>${s}</real>`).join('\n')}
	</array>
	<key>window_level</key>
	<real>-18.0</real>
	<key>window_width</key>
	<real>406.0</real>${extra}
</dict>
</plist>`;
}

/** A (z, y, x) int16 matrix whose value encodes its position: 100·z + 10·y + x − 500. */
function matrixBytes(nz: number, ny: number, nx: number): Uint8Array {
  const b = new Uint8Array(nz * ny * nx * 2);
  const dv = new DataView(b.buffer);
  let p = 0;
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, p += 2) dv.setInt16(p, 100 * z + 10 * y + x - 500, true);
  return b;
}

function inv3(opts: { nz?: number; ny?: number; nx?: number; spacing?: number[]; dir?: string; matrix?: Uint8Array; plist?: string; skip?: string } = {}): Uint8Array {
  const { nz = 3, ny = 4, nx = 5, spacing = [0.9, 0.8, 1.5], dir = 'tmpabc/' } = opts;
  const files = [
    { name: `${dir}main.plist`, data: opts.plist ?? mainPlist([nz, ny, nx], spacing) },
    { name: `${dir}matrix.dat`, data: opts.matrix ?? matrixBytes(nz, ny, nx) },
    { name: `${dir}mask_0.plist`, data: '<plist version="1.0"><dict/></plist>' },
  ].filter((f) => !opts.skip || !f.name.endsWith(opts.skip));
  return gzipSync(writeTar(files));
}

describe('tar reader', () => {
  it('reads names (ustar, GNU long names), sizes, and contents', () => {
    const long = 'a/'.repeat(70) + 'deep.txt';
    const t = writeTar([
      { name: './dir/', data: '', type: '5' },
      { name: './dir/x.bin', data: new Uint8Array(513).fill(7) },
      { name: long, data: 'hello', gnuLongName: true },
    ]);
    const e = readTar(t, 't.tar');
    expect(e.map((x) => [x.name, x.type, x.data.length])).toEqual([
      ['dir/', '5', 0],
      ['dir/x.bin', '0', 513],
      [long, '0', 5],
    ]);
    expect(e[1]!.data.every((v) => v === 7)).toBe(true);
  });

  it('rejects truncated and corrupt archives with the file name', () => {
    const t = writeTar([{ name: 'a', data: new Uint8Array(2000) }]);
    expect(() => readTar(t.subarray(0, 1000), 'cut.tar')).toThrow(/cut\.tar: truncated tar: member at byte 0 needs 2000 bytes/);
    const bad = t.slice();
    bad[10] = bad[10]! ^ 1;
    expect(() => readTar(bad, 'bad.tar')).toThrow(/bad\.tar: corrupt tar: header checksum mismatch/);
    expect(() => readTar(t.subarray(0, 300), 'short.tar')).toThrow(/short\.tar: truncated tar: header at byte 0/);
  });
});

describe('XML plist', () => {
  it('parses the value types InVesalius writes', () => {
    const v = parsePlist(
      `<?xml version="1.0"?><!-- c --><plist version="1.0"><dict><key>a</key><array><integer>-3</integer><real>1.5e2</real><true/><false/></array>` +
        `<key>s</key><string>x &lt; y &#x41;</string><key>e</key><dict/><key>d</key><data>AQID</data><key>t</key><date>2012-09-14T15:12:08Z</date></dict></plist>`,
      'p',
    );
    expect(v).toEqual({ a: [-3, 150, true, false], s: 'x < y A', e: {}, d: new Uint8Array([1, 2, 3]), t: '2012-09-14T15:12:08Z' });
  });

  it('names the file and the problem when malformed', () => {
    expect(() => parsePlist('<plist><dict><key>a</key><integer>x</integer></dict></plist>', 'm.plist')).toThrow(/m\.plist: malformed plist: bad <integer> "x"/);
    expect(() => parsePlist('<plist><dict><string>a</string></dict></plist>', 'm.plist')).toThrow(/expected <key> in <dict>/);
    expect(() => parsePlist('<plist><dict><key>a</key>', 'm.plist')).toThrow(/unexpected end of document/);
  });
});

describe('decodeInv3', () => {
  it('maps matrix (z, y, x) to tensor (i, j, k) = (x, y, z) with spacing (sx, sy, sz)', () => {
    const r = decodeInv3(inv3(), 'p.inv3');
    expect(r.volume.shape).toEqual([5, 4, 3]);
    expect(r.dims).toEqual([5, 4, 3]);
    expect(r.volume.spacing).toEqual([0.9, 0.8, 1.5]);
    expect(r.volume.affine).toEqual([0.9, 0, 0, 0, 0, 0.8, 0, 0, 0, 0, 1.5, 0, 0, 0, 0, 1]);
    for (let x = 0; x < 5; x++) for (let y = 0; y < 4; y++) for (let z = 0; z < 3; z++) expect(r.volume.data[(x * 4 + y) * 3 + z]).toBe(100 * z + 10 * y + x - 500);
    expect(r.matrix[(2 * 4 + 3) * 5 + 1]).toBe(100 * 2 + 10 * 3 + 1 - 500);
    expect(r.meta).toEqual({ name: 'Phantom & co', modality: 'CT', orientation: 1, scalarRange: [-1024, 3033], window: { level: -18, width: 406 } });
  });

  it('also reads an uncompressed tar and members at the top level', () => {
    const tar = writeTar([
      { name: 'main.plist', data: mainPlist([2, 2, 2], [1, 1, 1]) },
      { name: 'matrix.dat', data: matrixBytes(2, 2, 2) },
    ]);
    expect(decodeInv3(tar, 'plain.inv3').volume.data[1]).toBe(100 - 500);
  });

  it('gives clear errors for corrupt, truncated and incomplete projects', () => {
    const good = inv3();
    expect(() => decodeInv3(good.subarray(0, good.length - 40), 'cut.inv3')).toThrow(/cut\.inv3: corrupt or truncated gzip|cut\.inv3: corrupt gzip/);
    const flipped = good.slice();
    flipped[good.length - 6] = flipped[good.length - 6]! ^ 0xff; // the CRC
    expect(() => decodeInv3(flipped, 'crc.inv3')).toThrow(/crc\.inv3: corrupt gzip: CRC or length check failed/);
    expect(() => decodeInv3(inv3({ skip: 'matrix.dat' }), 'nomat.inv3')).toThrow(/nomat\.inv3: not an InVesalius project: no matrix\.dat/);
    expect(() => decodeInv3(inv3({ skip: 'main.plist' }), 'noplist.inv3')).toThrow(/no main\.plist/);
    expect(() => decodeInv3(inv3({ matrix: matrixBytes(3, 4, 4) }), 'size.inv3')).toThrow(
      /size\.inv3: matrix\.dat holds 96 bytes, but matrix\.shape \(z, y, x\) = \(3, 4, 5\) int16 needs 120 \(truncated\?\)/,
    );
    expect(() => decodeInv3(inv3({ spacing: [1, 0, 1] }), 'sp.inv3')).toThrow(/spacing must be 3 positive numbers/);
    expect(() => decodeInv3(inv3({ plist: mainPlist([3, 4], [1, 1, 1]) }), 'sh.inv3')).toThrow(/matrix\.shape must be 3 positive integers/);
    expect(() => decodeInv3(new TextEncoder().encode('hello world, not a tar at all'.repeat(30)), 'junk.inv3')).toThrow(/junk\.inv3: corrupt tar/);
  });
});

describe('encodeNifti1', () => {
  it('round-trips through decodeNifti (int16 and float32, gzip or not)', () => {
    const { volume } = decodeInv3(inv3(), 'p.inv3');
    for (const gzip of [false, true]) {
      const back = decodeNifti(encodeNifti1(volume, { dtype: 'int16', gzip }), 'rt.nii');
      expect(back.shape).toEqual(volume.shape);
      expect(back.dtype).toBe('int16');
      expect(Array.from(back.data)).toEqual(Array.from(volume.data));
      expect(back.spacing.map((s) => Math.fround(s))).toEqual(volume.spacing.map((s) => Math.fround(s)));
      expect(back.affine).toEqual(volume.affine.map((v) => Math.fround(v)));
    }
    const f = { ...volume, data: volume.data.map((v) => v / 3) };
    const back = decodeNifti(encodeNifti1(f, { dtype: 'float32' }), 'f.nii');
    expect(back.dtype).toBe('float32');
    expect(Array.from(back.data)).toEqual(Array.from(f.data));
  });

  it('writes a qform that agrees with the sform for rotations and reflections', () => {
    const c = Math.cos(0.3);
    const s = Math.sin(0.3);
    // Rotation about z, then scales (0.7, 0.8, 2) and a reflection of the third axis.
    const affine = [c * 0.7, -s * 0.8, 0, 10, s * 0.7, c * 0.8, 0, -20, 0, 0, -2, 30, 0, 0, 0, 1];
    const vol = { data: new Float32Array(24).map((_, i) => i), shape: [2, 3, 4] as [number, number, number], affine, name: 'rot' };
    const bytes = encodeNifti1(vol);
    // Clear sform_code so the reader has to use the qform.
    new DataView(bytes.buffer).setInt16(254, 0, true);
    const back = decodeNifti(bytes, 'q.nii');
    back.affine.forEach((v, n) => expect(v).toBeCloseTo(affine[n]!, 5));
    expect(back.spacing[2]).toBeCloseTo(2, 6);
  });

  it('refuses values int16 cannot hold', () => {
    const vol = { data: new Float32Array([1, 2.5]), shape: [2, 1, 1] as [number, number, number], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], name: 'v' };
    expect(() => encodeNifti1(vol, { dtype: 'int16' })).toThrow(/v: value 2\.5 at flat index 1 is not a whole number in the int16 range/);
  });

  it('inv3ToNifti gives the same volume as decodeInv3', () => {
    const bytes = inv3({ nz: 6, ny: 7, nx: 9 });
    const a = decodeInv3(bytes, 'p.inv3').volume;
    const b = decodeNifti(inv3ToNifti(bytes, 'p.inv3'), 'p.nii.gz');
    expect(b.shape).toEqual(a.shape);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });
});

describe('.deb extraction', () => {
  const member = 'usr/share/doc/pkg/examples/x.inv3';
  const payload = inv3();
  const dataTar = writeTar([
    { name: './usr/', data: '', type: '5' },
    { name: `./${member}`, data: payload },
  ]);
  const deb = writeAr([
    { name: 'debian-binary', data: new TextEncoder().encode('2.0\n') },
    { name: 'control.tar.gz', data: gzipSync(writeTar([{ name: './control', data: 'Package: pkg\n' }])) },
    { name: 'data.tar.gz', data: gzipSync(dataTar) },
  ]);

  it('reads the ar container and a gzip data.tar without dpkg-deb', async () => {
    expect(readAr(deb, 'p.deb').map((m) => m.name)).toEqual(['debian-binary', 'control.tar.gz', 'data.tar.gz']);
    expect(await debDataTar(deb, 'p.deb')).toEqual(dataTar);
    const dir = await mkdtemp(join(tmpdir(), 'reef-deb-'));
    try {
      const path = join(dir, 'p.deb');
      await writeFile(path, deb);
      const got = await extractDebMember(path, `/${member}`, { useDpkgDeb: false });
      expect(got).toEqual(payload);
      await expect(extractDebMember(path, 'usr/none', { useDpkgDeb: false })).rejects.toThrow(/has no usr\/none/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects what is not a .deb', () => {
    expect(() => readAr(new TextEncoder().encode('PK\u0003\u0004 not ar'), 'x.deb')).toThrow(/x\.deb: not an ar archive/);
    expect(() => readAr(deb.subarray(0, 100), 'cut.deb')).toThrow(/cut\.deb: truncated/);
  });
});
