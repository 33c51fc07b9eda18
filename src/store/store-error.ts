/**
 * The state database cannot be used: another process holds it, it is not a database agent-pool
 * can read, or a newer agent-pool wrote it. The message says which and what to do; the
 * server exits 2 with it.
 */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}
