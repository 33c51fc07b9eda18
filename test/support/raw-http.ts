import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

/**
 * Sends `bytes` as they are to 127.0.0.1:`port` (a request target, headers or frames that no
 * HTTP client would send) and resolves with everything the server answered once it closes
 * the connection, or after `waitMs` of silence.
 */
export function sendRaw(port: number, bytes: string | Buffer, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const quiet = (): void => {
      clearTimeout(timer);
      timer = setTimeout(done, waitMs);
    };
    socket.on('connect', () => {
      socket.write(bytes);
      quiet();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      quiet();
    });
    socket.on('close', done);
    socket.on('error', done);
  });
}

/** Opens a TCP connection to 127.0.0.1:`port` that the test owns; destroyed when it ends. */
export function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.off('error', reject);
      // Tests reset and abandon these: what the server does then is theirs to check.
      socket.on('error', () => undefined);
      resolve(socket);
    });
    socket.on('error', reject);
    onTestFinished(() => {
      socket.destroy();
    });
  });
}

/** The status code of a raw HTTP answer, or 0 when there was none. */
export function statusOf(answer: string): number {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(answer);
  return match ? Number(match[1]) : 0;
}
