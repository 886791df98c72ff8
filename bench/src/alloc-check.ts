// Child process (started with ALLOC_NODE_FLAGS): bytes allocated per op for every hot-path op.
import { bytesPerOp } from './alloc.js';
import { hotOps } from './wire.bench.js';

const result: Record<string, number> = {};
for (const [name, fn] of Object.entries(hotOps())) result[name] = bytesPerOp(fn);
process.stdout.write(JSON.stringify(result));
