/** @smc-r/cli: the `smcr` command. The library surface is what tests and tools reuse. */
export { main, buildProgram } from './main.js';
export { decodeBytes, decodeCapture, decodeClcStream, decodeLinkPayload, decodeTcpOptions, ROCE_V2_PORT, type DecodedItem, type ItemKind } from './decode.js';
export { decodeInput, formatItems, parseHex, DecodeInputError } from './commands/decode.js';
export { buildSampleHandshake } from './sample.js';
export { fieldsToNodes, renderTree, toJsonValue, formatScalar, type TreeNode } from './render.js';
