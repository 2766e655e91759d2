/**
 * The scan and its feature overlay in niivue (WebGL2): axial, coronal and sagittal slices and a 3D
 * render in one 2×2 grid. Volumes are handed over as in-memory NIfTI bytes — the scan as reef
 * decoded it (float32 HU, its affine), the overlay as RGBA32 on the same grid and affine — so
 * niivue never fetches anything and both layers line up voxel for voxel.
 */
import { MULTIPLANAR_TYPE, NVImage, Niivue, SHOW_RENDER } from '@niivue/niivue';
import { encodeNifti1, encodeNiftiRgba, type Volume } from '../src/index.js';

export class Viewer {
  readonly nv: Niivue;
  private scan: NVImage | null = null;
  private overlay: NVImage | null = null;
  private overlayOpacity = 0.55;

  private constructor(nv: Niivue) {
    this.nv = nv;
  }

  static async create(canvas: HTMLCanvasElement): Promise<Viewer> {
    const nv = new Niivue({
      backColor: [0, 0, 0, 1],
      // The page handles drops itself: it decodes with reef first, so errors are reef's.
      dragAndDropEnabled: false,
      multiplanarShowRender: SHOW_RENDER.ALWAYS,
      multiplanarLayout: MULTIPLANAR_TYPE.GRID,
      crosshairColor: [0.25, 0.75, 0.9, 0.8],
      // A fraction of the field of view, so the lines stay thin however coarse the voxels are.
      crosshairWidth: 0.3,
      crosshairWidthUnit: 'percent',
      isColorbar: false,
      logLevel: 'warn',
      show3Dcrosshair: false,
    });
    await nv.attachToCanvas(canvas);
    nv.setSliceType(nv.sliceTypeMultiplanar);
    return new Viewer(nv);
  }

  get hasScan(): boolean {
    return this.scan !== null;
  }

  /** Replaces whatever is shown by `vol`, windowed to [lo, hi] HU. */
  async showScan(vol: Volume, [lo, hi]: [number, number]): Promise<void> {
    const bytes = encodeNifti1(vol, { dtype: 'float32' });
    const img = await NVImage.loadFromUrl({ url: bytes, name: `${baseName(vol.name)}.nii`, colormap: 'gray', cal_min: lo, cal_max: hi, trustCalMinMax: true });
    for (const v of [...this.nv.volumes]) this.nv.removeVolume(v);
    this.overlay = null;
    this.scan = img;
    this.nv.addVolume(img);
    this.setWindow(lo, hi);
    this.nv.setRenderAzimuthElevation(120, 15);
  }

  setWindow(lo: number, hi: number): void {
    if (!this.scan) return;
    this.scan.cal_min = lo;
    this.scan.cal_max = hi;
    this.nv.updateGLVolume();
  }

  /** The feature colours (RGBA per scan voxel, tensor order) over the scan; null removes them. */
  async showOverlay(rgba: Uint8Array | null, like: Volume): Promise<void> {
    if (this.overlay) {
      this.nv.removeVolume(this.overlay);
      this.overlay = null;
    }
    if (!rgba) {
      this.nv.updateGLVolume();
      return;
    }
    const bytes = encodeNiftiRgba(rgba, { shape: like.shape, affine: like.affine, name: 'features' });
    const img = await NVImage.loadFromUrl({ url: bytes, name: 'features.nii', opacity: this.overlayOpacity });
    this.overlay = img;
    this.nv.addVolume(img);
    this.nv.setOpacity(this.nv.volumes.indexOf(img), this.overlayOpacity);
  }

  setOverlayOpacity(x: number): void {
    this.overlayOpacity = x;
    if (this.overlay) this.nv.setOpacity(this.nv.volumes.indexOf(this.overlay), x);
  }
}

function baseName(name: string): string {
  return (name.split(/[\\/]/).pop() ?? 'scan').replace(/\.nii(\.gz)?$/i, '') || 'scan';
}
