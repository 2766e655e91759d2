// Types for kernels-bench/peers/index.mjs (peer WebGPU engines for reef's matmul benchmark).

export type PeerDtype = 'f32' | 'f16';
export type PeerName = 'tfjs-webgpu' | 'ort-webgpu' | 'ort-cpu';

export interface Peer {
  /** 'tfjs-webgpu' | 'ort-webgpu' | 'ort-cpu' (ort-cpu is native CPU, not WebGPU). */
  readonly name: PeerName;
  /** Dtypes this peer verified at load time (ran, right answer, on the intended device). */
  readonly dtypes: PeerDtype[];
  /** Human-readable engine/version/adapter line, incl. how the device placement was verified. */
  readonly info: string;
  /** ORT peers only: the execution provider ORT's profiler reported for the MatMul node. */
  readonly verifiedProvider?: 'WebGpuExecutionProvider' | 'CPUExecutionProvider';
  /**
   * C[M,N] = A[M,K] · B[K,N], row-major. Inputs are f32 host arrays (for 'f16' they are
   * converted to binary16 inside the call); the result is a fresh f32 host array.
   * One call = upload both inputs + multiply + read back: time the whole call.
   * The first call for a shape/dtype does the per-shape setup (session, shaders).
   */
  matmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number, dtype?: PeerDtype): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

export interface LoadPeersOptions {
  /** The GPU object from `create()` of the `webgpu` package (dawn.node). The caller must keep it referenced. Needed by tfjs-webgpu only. */
  gpu?: unknown;
  /** dawn.node's `globals` (GPUBuffer, GPUBufferUsage, ...); optional, found automatically when omitted. */
  globals?: Record<string, unknown>;
  /** Peers to load, in order. Default ['tfjs-webgpu', 'ort-webgpu']. */
  include?: PeerName[];
}

export interface LoadPeersResult {
  peers: Peer[];
  /** Peers that could not load (package missing, no adapter, EP unavailable, wrong answer...). */
  skipped: { name: string; reason: string }[];
}

/** Never rejects because a peer cannot load; see `skipped`. */
export function loadPeers(options: LoadPeersOptions): Promise<LoadPeersResult>;

export const PEER_NAMES: PeerName[];

/** Serialized ONNX model (IR 8, opset 17) holding one MatMul: A[M,K] · B[K,N] -> C[M,N]. */
export function buildMatMulModel(M: number, K: number, N: number, dtype?: PeerDtype): Uint8Array;

/** f32 -> IEEE binary16 bits (round to nearest even) and back. */
export function toF16Bits(src: ArrayLike<number>): Uint16Array;
export function fromF16Bits(src: Uint16Array): Float32Array;
