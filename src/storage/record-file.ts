/**
 * A store's record read from disk: its JSON, or nothing.
 *
 * Each store keeps one small JSON file per volume or snapshot. A missing
 * file is an answer (there is no such volume); one that does not parse is
 * the driver's own fault, INTERNAL, and the message names the record so an
 * operator can find it.
 */
import { internal } from "../csi/errors";
import { readJsonIfPresent } from "./atomic-file";

/**
 * The record's JSON, or undefined where there is no file. `what` names it in
 * the message ("volume hp-…" gives "metadata of volume hp-… is not valid
 * JSON"); `likely` is readJsonIfPresent's hint.
 */
export function readRecordFile(file: string, what: string, likely = true): unknown {
  try {
    return readJsonIfPresent(file, likely);
  } catch (err) {
    if (err instanceof SyntaxError) throw internal(`metadata of ${what} is not valid JSON`);
    throw err;
  }
}
