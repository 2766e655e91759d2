/** Errors of the data pipeline (archives, sample volumes, resampling, crops, augmentations). */
import { ReefError } from '../gpu/errors.js';

export class DataError extends ReefError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataError';
  }
}
