/** Whether ops record onto the autograd tape. Off inside `noGrad`. */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

function withRecording<T>(on: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = on;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Runs `fn` without recording gradients (inference, optimizer updates, EMA). */
export function noGrad<T>(fn: () => T): T {
  return withRecording(false, fn);
}

/** Runs `fn` with recording on, also inside `noGrad` (activation recomputation during backward). */
export function withGrad<T>(fn: () => T): T {
  return withRecording(true, fn);
}
