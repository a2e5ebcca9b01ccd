/**
 * File-system templates: format once, clone for every volume.
 *
 * Formatting an image volume costs process starts — mkfs.ext4 and
 * debugfs, or mkfs.xfs — and was most of an image volume's CreateVolume.
 * Yet every new file system of one type and size is the same bytes, bar
 * its UUID and time stamps. So the first CreateVolume of a kind formats a
 * template in <root>/.templates/, and every later one clones it into the
 * new volume's image: a reflink where the root's file system shares
 * blocks (XFS, btrfs), else a copy of its few data ranges with its holes
 * kept (storage/sparse-file.ts). An ext4 clone then gets a UUID of its
 * own (mount/ext4-uuid.ts); an XFS clone keeps the template's and is
 * mounted nouuid, as a cloned volume already was.
 *
 * A kind is the file-system type, the exact size in bytes and the
 * formatting recipe (FORMAT_RECIPE), all three in the template's name —
 * `ext4-r1-1073741824.img` — so a driver that formats differently never
 * clones a template made the old way. (A newer mkfs alone does not make
 * new templates; remove .templates/ to have them remade.)
 *
 * Crash safety: a template is formatted as a temporary file (`.tmp-…`),
 * flushed, and renamed into place, and the rename is flushed too, so a
 * file under a template's name is always whole. The start-up sweep
 * removes temporary files a kill -9 left, and templates of other recipes.
 * Before each use a template is checked — a regular file of its size,
 * whose super-block says it is a file system of that type filling it —
 * and one that fails is made again.
 *
 * Concurrency: a kind has one entry here, and its first user builds it
 * (or checks the file left by an earlier run) while later users wait for
 * the same promise, so two creates never both format a template nor clone
 * a half-made one. Entries count their users; only an unused one is
 * evicted.
 *
 * Cost: at most MAX_TEMPLATES templates per root, the least recently used
 * removed first. Each takes what a freshly formatted image of its size
 * takes on the root's disk — a 1 GiB ext4 about 0.7 MiB, a 1 TiB one about
 * 16 MiB; an XFS one the 340 KiB it wrote plus its preallocated log (64 MiB
 * for most sizes) — and no quota: they are not volumes, so the capacity
 * ledger does not count them, and the space they take is simply not free.
 */
import { randomBytes } from "node:crypto";
import { lstatSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir } from "../../storage/atomic-file";
import { cloneSparseFile, makeSparseFile, syncFile } from "../../storage/sparse-file";
import { filesystemBytes, FORMAT_RECIPE, makeFilesystem, type FsType } from "../../mount/filesystem";
import { newExt4UuidAt } from "../../mount/ext4-uuid";
import { internal } from "../../csi/errors";

/** How many templates a root keeps. */
export const MAX_TEMPLATES = 8;

const NAME = /^(ext4|xfs)-(r\d+)-(\d+)\.img$/;
const TEMP_PREFIX = ".tmp-";

interface Entry {
  file: string;
  fsType: FsType;
  bytes: number;
  /** Creates using it now (or waiting for it): never evicted while > 0. */
  users: number;
  /** For LRU: the value of a counter when it was last used. */
  lastUsed: number;
  /** Settles when the template is ready to clone; undefined until first asked for. */
  ready: Promise<void> | undefined;
  /** `ready` has resolved: the file was whole then. */
  made: boolean;
}

export class TemplateStore {
  private readonly entries = new Map<string, Entry>();
  /** Removals under way, by file: a template made again under the same name waits for them. */
  private readonly removing = new Map<string, Promise<void>>();
  private clock = 0;

  private constructor(
    readonly dir: string,
    /** The root is on btrfs: templates are made NOCOW like the images cloned from them. */
    private readonly noCow: boolean,
  ) {}

  /**
   * Open `dir` (made if missing), removing what a crash left half-made and
   * templates of other recipes; the templates there stay, least recently
   * modified evicted first if there are too many.
   */
  static async open(dir: string, opts: { noCow: boolean }): Promise<TemplateStore> {
    await fsp.mkdir(dir, { recursive: true });
    const store = new TemplateStore(dir, opts.noCow);
    const found: { name: string; mtimeMs: number }[] = [];
    for (const name of await fsp.readdir(dir)) {
      const m = NAME.exec(name);
      if (name.startsWith(TEMP_PREFIX) || (m && FORMAT_RECIPE[m[1] as FsType] !== m[2])) {
        await fsp.rm(path.join(dir, name), { recursive: true, force: true }); // never follows a symlink
      } else if (m) {
        found.push({ name, mtimeMs: (await fsp.lstat(path.join(dir, name))).mtimeMs });
      }
      // Anything else is not the driver's and is left alone.
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { name } of found) {
      const m = NAME.exec(name)!;
      store.entry(m[1] as FsType, Number(m[3])).lastUsed = ++store.clock;
    }
    store.evict();
    return store;
  }

  /** The template file for a kind. */
  fileFor(fsType: FsType, bytes: number): string {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw internal(`no template for a size of ${bytes} bytes`);
    return path.join(this.dir, `${fsType}-${FORMAT_RECIPE[fsType]}-${bytes}.img`);
  }

  private entry(fsType: FsType, bytes: number): Entry {
    const file = this.fileFor(fsType, bytes);
    let e = this.entries.get(file);
    if (!e) {
      e = { file, fsType, bytes, users: 0, lastUsed: 0, ready: undefined, made: false };
      this.entries.set(file, e);
    }
    return e;
  }

  /**
   * Make `image` (which must not exist) a new, empty `fsType` file system
   * of `bytes` bytes: a clone of the kind's template, made first if need
   * be, with a UUID of its own. Not flushed: the caller syncs the image
   * when it commits it. `made`, if given, gets the new image's descriptor
   * once it is whole, before it is closed.
   */
  async makeImage(image: string, fsType: FsType, bytes: number, made?: (fd: number) => void): Promise<void> {
    const e = this.entry(fsType, bytes);
    e.users++; // before any await: from here on it cannot be evicted
    e.lastUsed = ++this.clock;
    try {
      if (e.made && !this.whole(e)) [e.ready, e.made] = [undefined, false]; // checked before each use, made again if need be
      const ready = (e.ready ??= this.prepare(e).then(() => void (e.made = true)));
      try {
        await ready;
      } catch (err) {
        // Nothing usable (e.g. mkfs is not installed): the next create tries again.
        if (e.ready === ready) e.ready = undefined;
        throw err;
      }
      await cloneSparseFile(e.file, image, {
        noCow: this.noCow,
        finish: async (fd) => {
          if (fsType === "ext4") await newExt4UuidAt(fd, image);
          made?.(fd);
        },
      });
    } finally {
      e.users--;
      this.evict();
    }
  }

  /** Use the template a previous run left, if whole; else make it. */
  private async prepare(e: Entry): Promise<void> {
    await this.removing.get(e.file);
    if (this.whole(e)) return;
    await fsp.rm(e.file, { recursive: true, force: true }); // what stands under the template's name is not one
    const tmp = path.join(this.dir, `${TEMP_PREFIX}${path.basename(e.file)}-${randomBytes(4).toString("hex")}`);
    try {
      await makeSparseFile(tmp, e.bytes, this.noCow);
      await makeFilesystem(tmp, e.fsType);
      await syncFile(tmp);
      if (!fits(tmp, e.fsType, e.bytes)) throw internal(`the ${e.fsType} file system just made in ${tmp} does not fill its ${e.bytes} bytes`);
      await fsp.rename(tmp, e.file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(this.dir);
  }

  /** Is the template on disk whole? (See fits.) */
  private whole(e: Entry): boolean {
    return fits(e.file, e.fsType, e.bytes);
  }

  /** Remove the least recently used unused templates beyond MAX_TEMPLATES. */
  private evict(): void {
    let excess = this.entries.size - MAX_TEMPLATES;
    if (excess <= 0) return;
    const idle = [...this.entries.values()].filter((e) => e.users === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle) {
      if (excess-- <= 0) break;
      this.entries.delete(e.file);
      const done = fsp
        .rm(e.file, { force: true })
        .catch(() => undefined) // a template that cannot be removed is only space; it is remade or removed later
        .finally(() => {
          if (this.removing.get(e.file) === done) this.removing.delete(e.file);
        });
      this.removing.set(e.file, done);
    }
  }
}

/**
 * The cheap check: `file` is a regular file of `bytes` bytes holding an
 * `fsType` file system, per its super-block, that fills it to within 1 MiB
 * (image sizes are whole MiB).
 */
export function fits(file: string, fsType: FsType, bytes: number): boolean {
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.size !== bytes) return false;
    const fsBytes = filesystemBytes(file, fsType);
    return fsBytes !== undefined && fsBytes <= bytes && bytes - fsBytes < 1024 * 1024;
  } catch {
    return false;
  }
}
