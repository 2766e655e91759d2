/**
 * The page: open a CT (NIfTI file, drop, or the synthetic phantom), view it in niivue with HU-window
 * presets, run a SwinViT / CoralBay encoder on WebGPU with reef, and lay the first three principal
 * components of one feature map over the scan as colour. A second tab runs the matmul benchmark.
 * Compute happens on WebGPU and is read back; display is niivue's WebGL2 (a headless browser may
 * run WebGPU compute without being able to present a WebGPU canvas).
 * `window.reefPage` lets the browser test drive the same code paths as the buttons.
 */
import { decodeNifti, featureStride, pcaRgb, type KernelProfile, type Volume } from '../src/index.js';
import { BENCH_SIZES, runBrowserBench } from './bench.js';
import { fileModel, getRuntime, useDevice, modelInput, MODEL_HU_WINDOW, randomModel, runModel, TINY_PRESETS, type HostMap, type Model, type ModelInput, type RunOutcome, type TinyPreset } from './model.js';
import { pagePhantom, type PhantomKind } from './phantom.js';
import { Viewer } from './viewer.js';

/** Display windows, in HU. */
export const HU_PRESETS: Record<string, [number, number]> = {
  lung: [-1350, 150],
  'soft tissue': [-150, 250],
  liver: [-45, 105],
  brain: [0, 80],
  full: [-1000, 1000],
};

/** Scan voxels at or below this HU (air) are left uncoloured by the overlay. */
const OVERLAY_AIR_HU = -900;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
};

interface State {
  viewer: Viewer | null;
  vol: Volume | null;
  window: string;
  model: Model | null;
  input: ModelInput | null;
  last: RunOutcome | null;
  busy: boolean;
}
const state: State = { viewer: null, vol: null, window: 'soft tissue', model: null, input: null, last: null, busy: false };

// ---------------------------------------------------------------------------------------------
// Errors and progress, shown in the page

function message(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

function showError(e: unknown): string {
  const text = message(e);
  const box = $('error');
  box.textContent = text;
  box.hidden = false;
  hook.lastError = text;
  console.error(e);
  return text;
}

function clearError(): void {
  $('error').hidden = true;
  $('error').textContent = '';
  hook.lastError = null;
}

const RUN_STAGES = ['prepare input', 'upload', 'encoder on WebGPU', 'read back', 'principal components', 'overlay'] as const;
type RunStage = (typeof RUN_STAGES)[number];

/** Shows a stage and yields so the browser can paint it before the next synchronous chunk. */
async function progress(stage: RunStage | 'done' | 'idle'): Promise<void> {
  const bar = $<HTMLProgressElement>('progress');
  const i = RUN_STAGES.indexOf(stage as RunStage);
  bar.value = stage === 'done' ? 1 : stage === 'idle' ? 0 : i / RUN_STAGES.length;
  $('stage-label').textContent = stage === 'done' || stage === 'idle' ? stage : `${i + 1}/${RUN_STAGES.length} ${stage}…`;
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
}

/** Runs one user action: one at a time, errors shown in the page and rethrown for the test hook. */
async function action<T>(fn: () => Promise<T>): Promise<T> {
  if (state.busy) throw new Error('busy: another action is still running');
  state.busy = true;
  document.body.classList.add('busy');
  clearError();
  try {
    return await fn();
  } catch (e) {
    showError(e);
    throw e;
  } finally {
    state.busy = false;
    document.body.classList.remove('busy');
  }
}

/** For button handlers: the error is already on the page. */
const fromUi = (fn: () => Promise<unknown>) => () => void fn().catch(() => {});

// ---------------------------------------------------------------------------------------------
// Scan

async function viewer(): Promise<Viewer> {
  if (!state.viewer) throw new Error('the viewer is not ready (WebGL2 unavailable?)');
  return state.viewer;
}

async function showVolume(vol: Volume): Promise<{ shape: number[] }> {
  state.vol = vol;
  state.last = null;
  state.input = null;
  await (await viewer()).showScan(vol, HU_PRESETS[state.window]!);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of vol.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  $('scan-info').textContent = `${vol.name}: ${vol.shape.join('×')} ${vol.dtype}, ${vol.spacing.map((s) => s.toFixed(2)).join('×')} mm, HU ${lo.toFixed(0)}…${hi.toFixed(0)}`;
  $('run-info').textContent = '';
  return { shape: [...vol.shape] };
}

function loadPhantom(opts: { size?: number; kind?: PhantomKind } = {}): Promise<{ shape: number[] }> {
  return action(async () => {
    const size = opts.size ?? Number($<HTMLSelectElement>('phantom-size').value);
    const kind = opts.kind ?? ($<HTMLSelectElement>('phantom-kind').value as PhantomKind);
    return showVolume(pagePhantom(size, kind));
  });
}

function toBytes(bytes: Uint8Array | ArrayBuffer | number[] | string): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (typeof bytes === 'string') return Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
  return Uint8Array.from(bytes);
}

function loadFile(bytes: Uint8Array | ArrayBuffer | number[] | string, name: string): Promise<{ shape: number[] }> {
  return action(async () => {
    if (!/\.nii(\.gz)?$/i.test(name)) throw new Error(`${name}: not a NIfTI file name (expected .nii or .nii.gz)`);
    return showVolume(decodeNifti(toBytes(bytes), name));
  });
}

// ---------------------------------------------------------------------------------------------
// Weights

function setModel(m: Model): void {
  state.model?.dispose();
  state.model = m;
  state.last = null;
  $('weights-info').textContent = m.label;
  const stage = $<HTMLSelectElement>('stage');
  const keep = stage.value;
  const names = ['hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3', 'hidden_states.4'];
  if (m.config.kind === 'coralbay-encoder') names.push('enc0', 'enc1', 'enc2', 'enc3', 'dec4');
  stage.replaceChildren(...names.map((n) => new Option(n, n)));
  stage.value = names.includes(keep) ? keep : 'hidden_states.1';
}

function useRandomWeights(seed?: number, preset?: TinyPreset): Promise<{ label: string }> {
  return action(async () => {
    const rt = await getRuntime();
    const s = seed ?? Number($<HTMLInputElement>('seed').value);
    if (!Number.isInteger(s) || s < 0) throw new Error(`seed ${s}: expected a whole number ≥ 0`);
    const p = preset ?? ($<HTMLSelectElement>('tiny-preset').value as TinyPreset);
    state.model?.dispose();
    state.model = null;
    setModel(randomModel(rt, p, s));
    await rt.sync();
    return { label: state.model!.label };
  });
}

function loadWeightsFile(file: File): Promise<{ label: string }> {
  return action(async () => {
    const rt = await getRuntime();
    // Free the old weights first: two large checkpoints need not fit at once.
    state.model?.dispose();
    state.model = null;
    $('weights-info').textContent = `loading ${file.name}…`;
    try {
      setModel(await fileModel(rt, file));
    } catch (e) {
      $('weights-info').textContent = 'no weights';
      throw e;
    }
    return { label: state.model!.label };
  });
}

// ---------------------------------------------------------------------------------------------
// Running the encoder and the overlay

interface RunReport {
  names: string[];
  shapes: number[][];
  data: number[][];
  input: number[];
  overlay: string;
  explained: number;
  ms: RunOutcome['ms'];
  profileKernels: number;
}

async function overlayMap(map: HostMap): Promise<number> {
  const vol = state.vol!;
  const input = state.input!;
  const cells = map.shape.slice(2);
  // Cell size in scan voxels: the map's stride over the model input times the input's own scale.
  const stride = featureStride(input.shape, cells).map((s, a) => s * input.scale[a]!);
  // Cells whose centre lies in air are left out of the statistics, or air would take a component.
  const [cd, ch, cw] = cells as [number, number, number];
  const centre = (f: number, a: number) => Math.min(vol.shape[a]! - 1, Math.max(0, Math.round((f + 0.5) * stride[a]! - 0.5)));
  const mask = new Uint8Array(cd * ch * cw);
  for (let d = 0; d < cd; d++) for (let h = 0; h < ch; h++) for (let w = 0; w < cw; w++) {
    const v = (centre(d, 0) * vol.shape[1] + centre(h, 1)) * vol.shape[2] + centre(w, 2);
    mask[(d * ch + h) * cw + w] = vol.data[v]! > OVERLAY_AIR_HU ? 1 : 0;
  }
  const { rgb, pca } = pcaRgb(map.data, map.shape, vol.shape, { stride, mask });
  const n = vol.data.length;
  const rgba = new Uint8Array(4 * n);
  for (let v = 0; v < n; v++) {
    rgba[4 * v] = rgb[3 * v]!;
    rgba[4 * v + 1] = rgb[3 * v + 1]!;
    rgba[4 * v + 2] = rgb[3 * v + 2]!;
    rgba[4 * v + 3] = vol.data[v]! > OVERLAY_AIR_HU ? 255 : 0;
  }
  await (await viewer()).showOverlay(rgba, vol);
  const explained = pca.totalVariance > 0 ? pca.variances.reduce((s, x) => s + x, 0) / pca.totalVariance : 0;
  return explained;
}

function run(stageName?: string, opts: { maxSide?: number } = {}): Promise<RunReport> {
  return action(async () => {
    if (!state.vol) throw new Error('no scan: open a NIfTI file or use the synthetic phantom first');
    if (!state.model) throw new Error('no weights: open a checkpoint or use random tiny weights first');
    const select = $<HTMLSelectElement>('stage');
    if (stageName !== undefined) {
      if (!Array.from(select.options).some((o) => o.value === stageName)) throw new Error(`unknown feature map '${stageName}' (have ${Array.from(select.options).map((o) => o.value).join(', ')})`);
      select.value = stageName;
    }
    const rt = await getRuntime();
    try {
      await progress('prepare input');
      const input = modelInput(state.vol, opts.maxSide ?? Number($<HTMLSelectElement>('max-side').value));
      state.input = input;
      const labels = { upload: 'upload', encoder: 'encoder on WebGPU', readback: 'read back' } as const;
      const out = await runModel(rt, state.model, input, (s) => progress(labels[s]));
      state.last = out;
      showProfile(out.profile, out.timed);
      await progress('principal components');
      const map = out.maps.find((m) => m.name === select.value)!;
      const explained = await overlayMap(map);
      await progress('overlay');
      $('run-info').textContent =
        `input ${input.shape.join('×')} (HU [${MODEL_HU_WINDOW.join(', ')}] → [0, 1]); ${out.maps.length} maps; ` +
        `upload ${out.ms.upload.toFixed(0)} ms, encoder ${out.ms.encoder.toFixed(0)} ms, read back ${out.ms.readback.toFixed(0)} ms; ` +
        `peak GPU memory ${(out.peakBytes / 2 ** 20).toFixed(1)} MiB; ${map.name} [${map.shape.join(', ')}]: 3 PCs explain ${(100 * explained).toFixed(1)}%`;
      await progress('done');
      return {
        names: out.maps.map((m) => m.name),
        shapes: out.maps.map((m) => m.shape),
        data: out.maps.map((m) => Array.from(m.data)),
        input: [...input.shape],
        overlay: map.name,
        explained,
        ms: out.ms,
        profileKernels: out.profile.length,
      };
    } catch (e) {
      await progress('idle');
      throw e;
    }
  });
}

/** A new map for the overlay from the last run, without running the encoder again. */
function showStage(name: string): Promise<void> {
  return action(async () => {
    const map = state.last?.maps.find((m) => m.name === name);
    if (!map) return;
    const explained = await overlayMap(map);
    $('run-info').textContent = `${map.name} [${map.shape.join(', ')}]: 3 PCs explain ${(100 * explained).toFixed(1)}%`;
  });
}

function showProfile(rows: KernelProfile[], timed: boolean): void {
  const f = (x: number | null, d: number) => (x === null ? '–' : x.toFixed(d));
  const table = document.createElement('table');
  table.className = 'grid';
  const head = ['kernel', 'calls', 'total ms', 'mean µs', 'GFLOP/s', 'GB/s'];
  table.createTHead().insertRow().append(...head.map((h) => Object.assign(document.createElement('th'), { textContent: h })));
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of [r.kernel, String(r.calls), f(r.totalMs, 3), f(r.meanUs, 1), f(r.gflops, 2), f(r.gbps, 2)]) tr.insertCell().textContent = c;
  }
  const total = rows.reduce((s, r) => s + (r.totalMs ?? 0), 0);
  const note = document.createElement('p');
  note.className = 'hint';
  note.textContent = timed
    ? `GPU time from timestamp queries (the browser may round them); total ${total.toFixed(2)} ms over ${rows.reduce((s, r) => s + r.calls, 0)} dispatches.`
    : 'This adapter has no timestamp queries: calls only.';
  $('profile').replaceChildren(table, note);
}

// ---------------------------------------------------------------------------------------------
// Benchmarks tab

function bench(opts: { sizes?: number[]; peaks?: boolean; budgetMs?: number } = {}): Promise<{ engine: string; shape: string; gflops: number; kernelGflops: number | null; maxRelErr: number; ok: boolean }[]> {
  return action(async () => {
    const rt = await getRuntime();
    const sizes = opts.sizes ?? Array.from(document.querySelectorAll<HTMLInputElement>('#bench-sizes input:checked')).map((i) => Number(i.value));
    if (!sizes.length) throw new Error('choose at least one matrix size');
    const logEl = $('bench-log');
    logEl.textContent = `${rt.describe()}\n`;
    const table = document.createElement('table');
    table.className = 'grid';
    const head = ['shape', 'engine', 'median ms', 'GFLOP/s', 'kernel GFLOP/s', 'max rel err', 'reps'];
    table.createTHead().insertRow().append(...head.map((h) => Object.assign(document.createElement('th'), { textContent: h })));
    const body = table.createTBody();
    $('bench-table').replaceChildren(table);
    const { rows } = await runBrowserBench(rt, {
      sizes,
      peaks: opts.peaks ?? $<HTMLInputElement>('bench-peaks').checked,
      budgetMs: opts.budgetMs ?? 1500,
      onLine: (l) => (logEl.textContent += `${l}\n`),
      onRow: (r) => {
        const tr = body.insertRow();
        const cells = [r.shape, r.engine, r.medianMs.toFixed(2), r.gflops.toFixed(2), r.kernelGflops === null ? '–' : r.kernelGflops.toFixed(2), `${r.maxRelErr.toExponential(1)}${r.ok ? '' : ' WRONG'}`, String(r.reps)];
        for (const c of cells) tr.insertCell().textContent = c;
        if (!r.ok) tr.className = 'bad';
      },
    });
    logEl.textContent += 'done\n';
    return rows.map((r) => ({ engine: r.engine, shape: r.shape, gflops: r.gflops, kernelGflops: r.kernelGflops, maxRelErr: r.maxRelErr, ok: r.ok }));
  });
}

// ---------------------------------------------------------------------------------------------
// Wiring

async function adapterInfo(): Promise<Record<string, unknown>> {
  const rt = await getRuntime();
  const c = rt.caps;
  return { describe: rt.describe(), vendor: c.vendor, architecture: c.architecture, device: c.device, description: c.description, isCpu: c.isCpu, f16: c.f16, subgroups: c.subgroups, subgroupMinSize: c.subgroupMinSize, subgroupMaxSize: c.subgroupMaxSize, timestamps: c.timestamps, maxStorageBufferBindingSize: c.maxStorageBufferBindingSize, maxBufferSize: c.maxBufferSize };
}

/** Switches the page to the caller's device; the weights on the old one are dropped. */
async function useHostDevice(device: GPUDevice): Promise<Record<string, unknown>> {
  state.model?.dispose();
  state.model = null;
  $('weights-info').textContent = 'no weights';
  await useDevice(device);
  return adapterInfo();
}

const hook = {
  ready: false,
  useDevice: useHostDevice,
  lastError: null as string | null,
  loadPhantom,
  loadFile,
  useRandomWeights,
  loadWeightsFile: (bytes: Uint8Array | ArrayBuffer | number[] | string, name: string) => loadWeightsFile(new File([toBytes(bytes) as BlobPart], name)),
  run,
  showStage,
  bench,
  adapter: adapterInfo,
  setWindow: (name: string) => setWindow(name),
  errorText: () => ($('error').hidden ? '' : ($('error').textContent ?? '')),
};
declare global {
  interface Window {
    reefPage: typeof hook;
  }
}
window.reefPage = hook;

function setWindow(name: string): void {
  const w = HU_PRESETS[name];
  if (!w) throw new Error(`unknown HU window '${name}' (have ${Object.keys(HU_PRESETS).join(', ')})`);
  state.window = name;
  for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>('#presets button'))) b.classList.toggle('active', b.dataset.window === name);
  state.viewer?.setWindow(w[0], w[1]);
}

function wireTabs(): void {
  for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>('button.tab'))) {
    b.addEventListener('click', () => {
      for (const o of Array.from(document.querySelectorAll<HTMLButtonElement>('button.tab'))) o.classList.toggle('active', o === b);
      $('viewer-tab').hidden = b.dataset.tab !== 'viewer';
      $('bench-tab').hidden = b.dataset.tab !== 'bench';
    });
  }
}

function wireControls(): void {
  const presets = $('presets');
  for (const [name, [lo, hi]] of Object.entries(HU_PRESETS)) {
    const b = document.createElement('button');
    b.textContent = name;
    b.title = `[${lo}, ${hi}] HU`;
    b.dataset.window = name;
    b.addEventListener('click', () => setWindow(name));
    presets.append(b);
  }
  $<HTMLSelectElement>('tiny-preset').replaceChildren(...TINY_PRESETS.map((p) => new Option(p, p)));
  $('bench-sizes').replaceChildren(
    ...BENCH_SIZES.map((n) => {
      const l = document.createElement('label');
      const i = Object.assign(document.createElement('input'), { type: 'checkbox', value: String(n), checked: n <= 256 });
      l.append(i, ` ${n}²`);
      return l;
    }),
  );
  $('phantom').addEventListener('click', fromUi(() => loadPhantom()));
  $<HTMLInputElement>('scan-file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) fromUi(async () => loadFile(new Uint8Array(await f.arrayBuffer()), f.name))();
  });
  $('random-weights').addEventListener('click', fromUi(() => useRandomWeights()));
  $<HTMLInputElement>('weights-file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) fromUi(() => loadWeightsFile(f))();
  });
  $('run').addEventListener('click', fromUi(() => run()));
  $<HTMLSelectElement>('stage').addEventListener('change', (ev) => {
    if (state.last && !state.busy) fromUi(() => showStage((ev.target as HTMLSelectElement).value))();
  });
  $<HTMLInputElement>('opacity').addEventListener('input', (ev) => state.viewer?.setOverlayOpacity(Number((ev.target as HTMLInputElement).value)));
  $('bench-run').addEventListener('click', fromUi(() => bench()));

  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files[0];
    if (f) fromUi(async () => loadFile(new Uint8Array(await f.arrayBuffer()), f.name))();
  });
}

async function main(): Promise<void> {
  wireTabs();
  wireControls();
  setWindow(state.window);
  try {
    state.viewer = await Viewer.create($<HTMLCanvasElement>('gl'));
  } catch (e) {
    showError(new Error(`the viewer needs WebGL2, which failed here: ${message(e)}`));
  }
  const adapter = $('adapter');
  if (!('gpu' in navigator) || !navigator.gpu) {
    adapter.textContent = 'WebGPU: not available';
    showError(new Error('This browser has no WebGPU (navigator.gpu is missing; it also needs a secure context such as https:// or http://127.0.0.1). Scans can be viewed, but the encoder cannot run.'));
  } else {
    getRuntime().then(
      (rt) => (adapter.textContent = `WebGPU: ${rt.describe()}`),
      (e) => {
        adapter.textContent = 'WebGPU: no adapter';
        showError(e);
      },
    );
  }
  hook.ready = true;
}

void main();
