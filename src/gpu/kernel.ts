/**
 * Kernels: a WGSL file from `shaders/`, one entry point, its element type and override constants.
 *
 * Binding layouts and the uniform parameter layout come from reflecting the WGSL (wgsl_reflect), so
 * the TypeScript side binds buffers and packs parameters by the names the shader declares; nothing
 * is kept in hand-written tables that could drift from the shader.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { ArrayInfo, MemberInfo, TemplateInfo, TypeInfo, VariableInfo } from 'wgsl_reflect/wgsl_reflect.module.js';

export type ElemType = 'f32' | 'f16';

/** A shader file: its name (file stem) and text. */
export interface ShaderFile {
  readonly name: string;
  readonly code: string;
}

export type OverrideValue = number | boolean;

export interface KernelKey {
  shader: ShaderFile;
  entry: string;
  /** Element type substituted for `alias T = f32;` in the file. */
  elem?: ElemType;
  /** Values for the file's `const NAME = …;` lines (sizes of private arrays and tiles). */
  consts?: Record<string, number>;
  overrides?: Record<string, OverrideValue>;
}

export type BindingKind = 'uniform' | 'read-only-storage' | 'storage';

export interface BindingInfo {
  name: string;
  binding: number;
  kind: BindingKind;
}

export interface ParamField {
  name: string;
  offset: number;
  /** Number of 4-byte scalars the field holds. */
  count: number;
  scalar: 'u32' | 'i32' | 'f32';
}

export interface ParamLayout {
  binding: number;
  name: string;
  size: number;
  fields: Map<string, ParamField>;
}

/** A compiled kernel: pipeline plus what reflection said about its interface. */
export interface CompiledKernel {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** Storage bindings, by name. */
  readonly buffers: BindingInfo[];
  readonly params: ParamLayout | null;
}

const ELEM_ALIAS = /^alias T = f32;$/m;

/**
 * The WGSL text for a kernel key. Two substitutions exist, both on whole declared lines so the file
 * reads as plain WGSL with its defaults: the element type (`alias T = f32;`, plus `enable f16;`), and
 * module constants (`const TM = 4u;`), which WGSL needs for the sizes of private arrays where
 * override constants are not allowed.
 */
export function specialise(shader: ShaderFile, elem: ElemType = 'f32', consts: Record<string, number> = {}): string {
  let code = shader.code;
  for (const [name, value] of Object.entries(consts)) {
    const line = new RegExp(`^const ${name}(\\s*:\\s*(\\w+))?\\s*=\\s*[^;]+;`, 'm');
    const m = line.exec(code);
    if (!m) throw new Error(`shader ${shader.name} has no 'const ${name} = …;' line`);
    if (!Number.isInteger(value)) throw new Error(`shader ${shader.name}: const ${name} must be an integer, got ${value}`);
    const ty = m[2];
    const literal = ty === 'u32' ? `${value}u` : ty === 'i32' ? `${value}i` : ty === 'f32' ? `${value}.0` : `${value}`;
    code = code.replace(line, `const ${name}${ty ? `: ${ty}` : ''} = ${literal};`);
  }
  if (elem === 'f32') return code;
  if (!ELEM_ALIAS.test(code)) throw new Error(`shader ${shader.name} has no 'alias T = f32;' line, so it has no ${elem} variant`);
  return `enable f16;\n${code.replace(ELEM_ALIAS, 'alias T = f16;')}`;
}

export function kernelLabel(key: KernelKey): string {
  const elem = key.elem && key.elem !== 'f32' ? `<${key.elem}>` : '';
  const entry = key.entry === 'main' ? '' : `.${key.entry}`;
  return `${key.shader.name}${entry}${elem}`;
}

const sorted = (o: object | undefined) => (o ? Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)) : []);

// Shaders are told apart by identity, not name: two inline shaders may share a name.
const shaderIds = new WeakMap<ShaderFile, number>();
let nextShaderId = 1;

function cacheKey(key: KernelKey): string {
  let id = shaderIds.get(key.shader);
  if (id === undefined) shaderIds.set(key.shader, (id = nextShaderId++));
  return `${id}|${key.entry}|${key.elem ?? 'f32'}|${JSON.stringify(sorted(key.consts))}|${JSON.stringify(sorted(key.overrides))}`;
}

const COMPUTE_STAGE = 0x4; // GPUShaderStage.COMPUTE

function scalarOf(type: TypeInfo | null | undefined): ParamField['scalar'] {
  let t: TypeInfo | null | undefined = type;
  for (let depth = 0; t && depth < 4; depth++) {
    if (t.name === 'f32' || t.name === 'i32' || t.name === 'u32') return t.name;
    if (/f$/.test(t.name) && /^vec\d/.test(t.name)) return 'f32';
    if (/i$/.test(t.name) && /^vec\d/.test(t.name)) return 'i32';
    if (/u$/.test(t.name) && /^vec\d/.test(t.name)) return 'u32';
    t = (t as ArrayInfo).format ?? (t as TemplateInfo).format ?? null;
  }
  throw new Error(`unsupported uniform field type ${type?.name}`);
}

interface Reflected {
  buffers: BindingInfo[];
  params: ParamLayout | null;
}

function reflect(code: string, entry: string, label: string): Reflected {
  const r = new WgslReflect(code);
  const fn = r.entry.compute.find((f) => f.name === entry);
  if (!fn) throw new Error(`kernel ${label}: no @compute entry point '${entry}'`);
  const buffers: BindingInfo[] = [];
  let params: ParamLayout | null = null;
  for (const v of fn.resources as VariableInfo[]) {
    if (v.group !== 0) throw new Error(`kernel ${label}: binding '${v.name}' is in group ${v.group}; reef uses group 0 only`);
    if (v.resourceType === 0) {
      if (params) throw new Error(`kernel ${label}: more than one uniform binding`);
      const fields = new Map<string, ParamField>();
      for (const m of (v.members ?? []) as MemberInfo[]) {
        fields.set(m.name, { name: m.name, offset: m.offset, count: Math.max(1, m.size / 4), scalar: scalarOf(m.type) });
      }
      params = { binding: v.binding, name: v.name, size: v.size, fields };
    } else if (v.resourceType === 1) {
      buffers.push({ name: v.name, binding: v.binding, kind: v.access === 'read' ? 'read-only-storage' : 'storage' });
    } else {
      throw new Error(`kernel ${label}: binding '${v.name}' is not a buffer`);
    }
  }
  buffers.sort((a, b) => a.binding - b.binding);
  return { buffers, params };
}

/** Compiles each distinct (shader, entry, element type, overrides) once. */
export class PipelineCache {
  private readonly cache = new Map<string, CompiledKernel>();

  constructor(
    private readonly device: GPUDevice,
    private readonly onAsyncError: (label: string, e: Error) => void,
    /** Hands the runtime each pending error check, so `checkErrors()` waits for compiles too. */
    private readonly track: (check: Promise<void>) => void,
  ) {}

  get size(): number {
    return this.cache.size;
  }

  get(key: KernelKey): CompiledKernel {
    const k = cacheKey(key);
    const hit = this.cache.get(k);
    if (hit) return hit;
    const compiled = this.compile(key);
    this.cache.set(k, compiled);
    return compiled;
  }

  private compile(key: KernelKey): CompiledKernel {
    const label = kernelLabel(key);
    const code = specialise(key.shader, key.elem, key.consts);
    const { buffers, params } = reflect(code, key.entry, label);
    const entries: GPUBindGroupLayoutEntry[] = buffers.map((b) => ({
      binding: b.binding,
      visibility: COMPUTE_STAGE,
      buffer: { type: b.kind },
    }));
    if (params) entries.push({ binding: params.binding, visibility: COMPUTE_STAGE, buffer: { type: 'uniform' } });
    const device = this.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label });
    const layout = device.createBindGroupLayout({ entries, label });
    const constants: Record<string, number> = {};
    for (const [name, v] of Object.entries(key.overrides ?? {})) constants[name] = typeof v === 'boolean' ? Number(v) : v;
    const pipeline = device.createComputePipeline({
      label,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout], label }),
      compute: { module, entryPoint: key.entry, constants },
    });
    this.track(
      device.popErrorScope().then(async (err) => {
        if (!err) return;
        const info = await module.getCompilationInfo().catch(() => null);
        const msgs = (info?.messages ?? []).map((m) => `  ${m.type} at line ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
        this.onAsyncError(label, new Error(`${err.message}${msgs ? `\n${msgs}` : ''}`));
      }),
    );
    return { label, pipeline, layout, buffers, params };
  }
}

/** Packs named parameters into the uniform struct's bytes, by the reflected offsets. */
export function packParams(layout: ParamLayout, values: Record<string, number | readonly number[]>, label: string): Uint8Array {
  const bytes = new ArrayBuffer(Math.ceil(layout.size / 16) * 16);
  const u32 = new Uint32Array(bytes);
  const i32 = new Int32Array(bytes);
  const f32 = new Float32Array(bytes);
  for (const [name, field] of layout.fields) {
    const v = values[name];
    if (v === undefined) {
      if (name.startsWith('_pad')) continue;
      throw new Error(`kernel ${label}: parameter '${name}' not given`);
    }
    const list = typeof v === 'number' ? [v] : v;
    if (list.length > field.count) throw new Error(`kernel ${label}: parameter '${name}' takes ${field.count} values, got ${list.length}`);
    const base = field.offset / 4;
    for (let i = 0; i < list.length; i++) {
      const x = list[i]!;
      if (field.scalar === 'f32') f32[base + i] = x;
      else if (field.scalar === 'i32') i32[base + i] = x;
      else {
        if (!(x >= 0 && x <= 0xffffffff && Number.isInteger(x))) throw new Error(`kernel ${label}: parameter '${name}' = ${x} is not a u32`);
        u32[base + i] = x;
      }
    }
  }
  for (const name of Object.keys(values)) {
    if (!layout.fields.has(name)) throw new Error(`kernel ${label}: unknown parameter '${name}'`);
  }
  return new Uint8Array(bytes);
}
