// Prints the WebGPU adapter that Dawn finds (one line of JSON) and exits 0, or exits 1 when none.
// Used by scripts/setup.sh to decide whether a software Vulkan driver must be installed.
import { create } from 'webgpu';

const gpu = create([]);
globalThis.__reefProbeGpu = gpu; // dawn.node crashes if this object is collected while in use
const adapter = await gpu.requestAdapter().catch(() => null);
if (!adapter) {
  console.log(JSON.stringify({ adapter: null }));
  process.exit(1);
}
const info = adapter.info ?? {};
console.log(JSON.stringify({
  vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
  features: [...adapter.features].sort(),
}));
process.exit(0);
