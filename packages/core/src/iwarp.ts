/**
 * SMC-R links on iWARP devices between stacks that use a connection manager (our extension: the
 * kernel's SMC-R on Alibaba eRDMA sends no MPA and derives a TCP tuple instead, spec 5.2, which
 * standard verbs cannot express). After CLC has exchanged the QPNs, the server connects its QP to
 * the client's manager (iWARP lets only the active side send first, and the server sends the first
 * LLC message, CONFIRM_LINK); the client accepts the request that names both QPNs.
 *
 * Private data, 24 bytes (well inside the 56 a connect request carries on every transport):
 *   0  E2 D4 C3 D9   "SMCR" in EBCDIC, so a stray request is recognisably not ours
 *   4  version 1, 3 reserved bytes (zero)
 *   8  server QPN, big endian
 *  12  client QPN, big endian (the client's key for its pending link)
 *  16  server's 8-byte system id (the CLC peer id)
 */
const EYECATCHER = 0xe2d4c3d9;
export const CM_PRIVATE_DATA_LEN = 24;

export function encodeCmPrivateData(serverQpn: number, clientQpn: number, serverPeerId: Uint8Array): Buffer {
  const b = Buffer.alloc(CM_PRIVATE_DATA_LEN);
  b.writeUInt32BE(EYECATCHER, 0);
  b[4] = 1;
  b.writeUInt32BE(serverQpn >>> 0, 8);
  b.writeUInt32BE(clientQpn >>> 0, 12);
  b.set(serverPeerId.subarray(0, 8), 16);
  return b;
}

/** Whether `pd` is a version-1 request from the server `serverPeerId` for the link (serverQpn, clientQpn). */
export function matchesCmPrivateData(pd: Uint8Array, serverQpn: number, clientQpn: number, serverPeerId: Uint8Array): boolean {
  if (pd.length < CM_PRIVATE_DATA_LEN) return false;
  const b = Buffer.from(pd.buffer, pd.byteOffset, pd.length);
  return b.readUInt32BE(0) === EYECATCHER && b[4] === 1
    && b.readUInt32BE(8) === serverQpn >>> 0 && b.readUInt32BE(12) === clientQpn >>> 0
    && b.subarray(16, 24).equals(Buffer.from(serverPeerId.subarray(0, 8)));
}
