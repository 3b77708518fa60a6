// Log lines that may carry a host's text. core.info prints its text as it is, and the runner reads every line
// of the step's output for workflow commands: a container name, an image label or a lock note holding a
// newline and '::warning::...' would forge an annotation, mask a value or set an output. (core.warning,
// core.error and setFailed escape their text already.) Such text is printed with command processing stopped
// around it, as GitHub documents for logging untrusted text ("Stopping and starting workflow commands"):
// '::stop-commands::TOKEN' ... '::TOKEN::', the token random, so the text cannot end the stop itself.
import * as core from '@actions/core'
import { randomBytes } from 'node:crypto'

// What the runner (actions/runner ActionCommand) takes for a command: a line that starts with '::' once .NET's
// TrimStart has removed its white space (which counts U+0085, unlike JavaScript's \s), or the old form '##['
// anywhere in a line. It reads lines as .NET's ReadLine splits them: at \n, \r and \r\n.
const COMMAND_LINE = /^[\s\u0085\u180e]*::/
const OLD_COMMAND = '##['

/** Whether the runner could read a line of `text` as a workflow command. */
export function mayCarryCommand(text: string): boolean {
  return text.includes(OLD_COMMAND) || text.split(/\r\n|\r|\n/).some((line) => COMMAND_LINE.test(line))
}

/**
 * `text` as it should be printed: unchanged when no line of it could be a command (the common case, so the log
 * stays plain), else between a stop and a resume of command processing.
 */
export function commandSafe(text: string, token: string = randomBytes(16).toString('hex')): string {
  if (!mayCarryCommand(text)) return text
  if (text.includes(token)) return commandSafe(text)
  return `::stop-commands::${token}\n${text}\n::${token}::`
}

/** core.info for text that may hold a host's text. */
export const safeInfo = (text: string): void => core.info(commandSafe(text))
