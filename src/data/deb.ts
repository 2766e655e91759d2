/**
 * Pulling one file out of a Debian package (Node only). With `dpkg-deb` on the PATH its
 * `--fsys-tarfile` does the unpacking; otherwise the .deb (an `ar` archive) is read here and its
 * data.tar.{gz,xz,zst} is decompressed with fflate or the `xz`/`zstd` command-line tools.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { DataError } from './errors.js';
import { gunzipChecked } from './gzip.js';
import { readTar } from './tar.js';

export interface ArMember {
  name: string;
  data: Uint8Array;
}

/** Members of a System V / GNU `ar` archive (the .deb container). */
export function readAr(bytes: Uint8Array, name: string): ArMember[] {
  const magic = '!<arch>\n';
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== magic) throw new DataError(`${name}: not an ar archive (a .deb starts with "!<arch>")`);
  const out: ArMember[] = [];
  let p = 8;
  while (p < bytes.length) {
    if (p + 60 > bytes.length) throw new DataError(`${name}: truncated ar header at byte ${p}`);
    const hdr = new TextDecoder().decode(bytes.subarray(p, p + 60));
    if (hdr.slice(58, 60) !== '`\n') throw new DataError(`${name}: corrupt ar header at byte ${p}`);
    const size = Number(hdr.slice(48, 58).trim());
    if (!Number.isSafeInteger(size) || size < 0) throw new DataError(`${name}: bad ar member size at byte ${p}`);
    const start = p + 60;
    if (start + size > bytes.length) throw new DataError(`${name}: truncated: ar member at byte ${p} needs ${size} bytes, ${bytes.length - start} left`);
    out.push({ name: hdr.slice(0, 16).trim().replace(/\/$/, ''), data: bytes.subarray(start, start + size) });
    p = start + size + (size % 2);
  }
  return out;
}

/** Runs a command with optional stdin and returns its stdout; errors carry the stderr tail. */
export function runCommand(cmd: string, args: string[], opts: { input?: Uint8Array; cwd?: string } = {}): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new DataError(e.code === 'ENOENT' ? `${cmd} is not installed (or not on the PATH)` : `${cmd} failed to start: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(new Uint8Array(Buffer.concat(out)));
      else reject(new DataError(`${cmd} ${args.join(' ')} exited with ${code}: ${Buffer.concat(err).toString().trim().slice(-800)}`));
    });
    child.stdin.on('error', () => {}); // a child that exits early closes its stdin; the exit code tells
    child.stdin.end(opts.input ?? new Uint8Array(0));
  });
}

/** The uncompressed data.tar of a .deb held in memory, without dpkg-deb. */
export async function debDataTar(deb: Uint8Array, name: string): Promise<Uint8Array> {
  const member = readAr(deb, name).find((m) => m.name.startsWith('data.tar'));
  if (!member) throw new DataError(`${name}: no data.tar member (not a Debian package?)`);
  const ext = member.name.slice('data.tar'.length);
  switch (ext) {
    case '':
      return member.data;
    case '.gz':
      return gunzipChecked(member.data, `${name}:${member.name}`);
    case '.xz':
      return runCommand('xz', ['-dc'], { input: member.data });
    case '.zst':
      return runCommand('zstd', ['-dc'], { input: member.data });
    default:
      throw new DataError(`${name}: unsupported ${member.name} (expected data.tar, .gz, .xz or .zst)`);
  }
}

/**
 * One file of the package's filesystem tree, e.g. "usr/share/doc/x/file" (a leading "./" or "/"
 * is ignored). `useDpkgDeb: false` forces the built-in path.
 */
export async function extractDebMember(debPath: string, member: string, opts: { useDpkgDeb?: boolean } = {}): Promise<Uint8Array> {
  const want = member.replace(/^\.?\//, '');
  let tar: Uint8Array | undefined;
  if (opts.useDpkgDeb ?? true) {
    try {
      tar = await runCommand('dpkg-deb', ['--fsys-tarfile', debPath]);
    } catch (e) {
      if (!(e instanceof DataError && /not installed/.test(e.message))) throw e;
    }
  }
  tar ??= await debDataTar(await readFile(debPath), debPath);
  const hit = readTar(tar, debPath).find((e) => e.name.replace(/^\//, '') === want);
  if (!hit) throw new DataError(`${debPath}: the package has no ${want}`);
  if (hit.type !== '0' && hit.type !== '7') throw new DataError(`${debPath}: ${want} is not a regular file (tar type ${hit.type})`);
  return hit.data;
}
