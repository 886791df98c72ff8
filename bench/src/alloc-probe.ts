// Sanity probe for bytesPerOp, run as a child process with ALLOC_NODE_FLAGS by alloc.test.ts.
import { bytesPerOp } from './alloc.js';

const sink: unknown[] = [];
const buf = Buffer.alloc(64);
const none = bytesPerOp(() => { buf.writeUInt32BE(0x12345678, 4); });
const some = bytesPerOp(() => { sink[0] = { a: 1, b: 2 }; });
process.stdout.write(JSON.stringify({ none, some }));
