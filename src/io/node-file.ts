/** safetensors files under Node: a `ByteSource` over a file handle, and an atomic writer. */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ReefError } from '../gpu/errors.js';
import { checkRange, encodeTensor, safetensorsLayout, type ByteSource, type WriteTensor } from './safetensors.js';

export interface FileSource extends ByteSource {
  readonly path: string;
  close(): Promise<void>;
}

/** Reads at offsets on demand, so a file of any size costs only the tensor being read. */
export async function fileSource(path: string): Promise<FileSource> {
  const handle = await open(path, 'r');
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (e) {
    await handle.close();
    throw e;
  }
  return {
    path,
    size,
    async read(offset, length) {
      checkRange(offset, length, size, path);
      // A fresh buffer per read: decoders can then view it in place instead of copying.
      const buf = new Uint8Array(length);
      // Reads may be short (and one read is capped near 2 GiB), so loop.
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new ReefError(`${path}: file ended at byte ${offset + done}, before the ${size} bytes it had when opened`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes `path` atomically: readers see the old file or the complete new one, never a torn one, even
 * across a crash. The data goes to `path.tmp-<pid>`, is fsynced, renamed over `path`, and the
 * directory is fsynced so the rename itself is durable. Tensors are encoded one at a time.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly WriteTensor[],
  metadata?: Record<string, string>,
): Promise<void> {
  const layout = safetensorsLayout(tensors, metadata); // validates everything before touching the disk
  await writeAtomically(path, async (handle) => {
    await writeAll(handle, layout.header, 0);
    for (const p of layout.tensors) await writeAll(handle, encodeTensor(tensors[p.index]!), p.offset);
  });
}

/** Writes a small file (JSON, text) atomically, as writeSafetensorsFile does. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await writeAtomically(path, (handle) => writeAll(handle, bytes, 0));
}

/** Write to a temporary file, fsync, rename over `path`, fsync the directory. */
async function writeAtomically(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    try {
      await write(handle);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDirectory(dirname(path));
}

/** Makes renames and creations inside `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory to fsync it; its rename is as durable as it gets there.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
