/** Entry of the self-contained CLI bundle (dist/standalone/reef.mjs) for machines without node_modules. */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
process.exit(process.exitCode);
