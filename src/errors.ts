// Errors that reach the user. Each carries the exit code the CLI documents:
// 0 success, 1 failure, 2 bad input, 130/143 interrupted after a checkpoint.
export const EXIT = { OK: 0, FAILURE: 1, BAD_INPUT: 2, SIGINT: 130, SIGTERM: 143 } as const;

/** Bad input from the user (config, data file, flag, checkpoint): one clear line, exit 2. */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.BAD_INPUT) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** A runtime failure that is not the input's fault (e.g. no GPU when one was required): exit 1. */
export class FlowFailure extends UserError {
  constructor(message: string) {
    super(message, EXIT.FAILURE);
    this.name = 'FlowFailure';
  }
}
