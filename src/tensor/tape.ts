/**
 * Recording onto the autograd tape. An op that has inputs requiring gradients attaches a node to
 * its output: the inputs, the tensors its backward needs (shared handles, so the caller may dispose
 * its own), and the backward function. Nothing is recorded under `noGrad`.
 */
import { isGradEnabled } from './grad-mode.js';
import type { GradNode, Tensor } from './tensor.js';

export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  save: readonly Tensor[],
  backward: GradNode['backward'],
): Tensor {
  if (!needsGrad(inputs)) return out;
  out.requiresGrad = true;
  out.gradFn = { op, inputs, saved: save.map((t) => t.share()), backward };
  return out;
}

/** Frees what a node kept for backward. */
export function releaseNode(node: GradNode): void {
  for (const t of node.saved) t.dispose();
  node.saved = [];
}
