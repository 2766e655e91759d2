// Lets vitest/vite import shaders/*.wgsl as strings, as esbuild's text loader does for the bundles.
export function wgslText() {
  return {
    name: 'reef-wgsl-text',
    transform(code, id) {
      if (!id.endsWith('.wgsl')) return null;
      return { code: `export default ${JSON.stringify(code)};`, map: null };
    },
  };
}
