/** A reason `serve` cannot start (a taken port, a refused option, a second server): exit 2 with this one line. */
export class ServeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServeError';
  }
}
