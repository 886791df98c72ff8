/**
 * The file descriptor behind a node:net Socket or Server. Node keeps it on the private libuv
 * handle (`_handle.fd`), stable on Linux; anything else is refused with BAD_SOCKET rather than
 * guessed, since a wrong fd would address another socket.
 */
import type { Server, Socket } from 'node:net';
import { SockopsError, SockopsErrorCode } from './errors.js';

function handleFd(obj: unknown): number | undefined {
  const handle = (obj as { _handle?: { fd?: unknown } } | null)?._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** The fd of a connected socket, or `socket` itself when it is already an fd number. */
export function socketFd(socket: Socket | number, what: string): number {
  if (typeof socket === 'number') {
    if (Number.isInteger(socket) && socket >= 0) return socket;
    throw new SockopsError(SockopsErrorCode.BAD_SOCKET, `${what}: fd ${socket} is not a non-negative integer`);
  }
  const fd = handleFd(socket);
  if (fd === undefined) {
    throw new SockopsError(SockopsErrorCode.BAD_SOCKET, `${what}: the socket has no file descriptor (not a TCP socket, not connected yet, or already destroyed)`);
  }
  return fd;
}

/** The fd of a listening server (call after its 'listening' event). */
export function serverFd(server: Server, what: string): number {
  const fd = handleFd(server);
  if (fd === undefined) {
    throw new SockopsError(SockopsErrorCode.BAD_SOCKET, `${what}: the server has no file descriptor (call it after 'listening'; pipe and cluster-shared servers have none)`);
  }
  return fd;
}
