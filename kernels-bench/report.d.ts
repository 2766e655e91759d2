/** Text and Markdown tables of benchmark results. */
import type { MatmulRow } from './matmul.js';
export declare const MATMUL_HEAD: string[];
export declare function matmulCells(r: MatmulRow): string[];
export declare function textTable(head: string[], rows: string[][]): string;
export declare function markdownTable(head: string[], rows: string[][]): string;
