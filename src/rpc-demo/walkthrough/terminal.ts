/**
 * What the screen allows: colour, and a width.
 *
 * Colour only on a terminal, never with --plain, and never when NO_COLOR is
 * set to anything but "" (no-color.org). Lines fit 100 columns — what a
 * projector at the front of a classroom shows legibly — unless the
 * terminal is wider; a longer line is wrapped at a space, its continuation
 * indented under the text it continues (a dump row's meaning, a step's
 * title), or cut where there is no space (JSON, hex).
 */
export const PROJECTOR_WIDTH = 100;

export function colorAllowed(plain: boolean, stream: NodeJS.WriteStream = process.stdout): boolean {
  return !plain && stream.isTTY === true && !process.env["NO_COLOR"];
}

export function outputWidth(stream: NodeJS.WriteStream = process.stdout): number {
  return stream.isTTY === true && (stream.columns ?? 0) > PROJECTOR_WIDTH ? stream.columns : PROJECTOR_WIDTH;
}

// eslint-disable-next-line no-control-regex
const SGR = /\x1b\[[0-9;]*m/y;

/** Columns a line takes on screen (colour codes take none). */
export function visibleLength(s: string): number {
  return [...s.replace(/\x1b\[[0-9;]*m/g, "")].length;
}

/** Where continuation lines start: under a dump row's text, a step's title, or past the indentation. */
function hangOf(plainLine: string): number {
  const dump = /^(\s*[0-9a-f]{4}  (?:[0-9a-f]{2} ){0,8}\s*)(\s*)/.exec(plainLine);
  if (dump) return Math.max(dump[0].length, 32);
  const step = /^\s*\d+\. \S+\s+\S+\s+\+[\d.]+ ms  /.exec(plainLine);
  if (step) return step[0].length;
  return /^\s*/.exec(plainLine)![0].length + 2;
}

/** One line as lines of at most `width` columns. */
export function wrapLine(line: string, width: number): string[] {
  if (visibleLength(line) <= width) return [line];
  const hang = Math.min(hangOf(line.replace(/\x1b\[[0-9;]*m/g, "")), Math.floor(width / 2));
  const out: string[] = [];
  let rest = line;
  while (visibleLength(rest) > width) {
    // Walk the characters, counting columns; remember the last space past the hang.
    let col = 0;
    let cut = -1;
    let hard = rest.length;
    for (let i = 0; i < rest.length; ) {
      SGR.lastIndex = i;
      const m = SGR.exec(rest);
      if (m) {
        i += m[0].length;
        continue;
      }
      const ch = String.fromCodePoint(rest.codePointAt(i)!);
      if (col === width) {
        hard = i;
        break;
      }
      if (ch === " " && col > hang) cut = i;
      col++;
      i += ch.length;
    }
    const at = cut > 0 ? cut : hard;
    out.push(rest.slice(0, at).trimEnd());
    rest = " ".repeat(hang) + rest.slice(at).trimStart();
  }
  out.push(rest);
  return out;
}

/** Every line of a text wrapped to `width`. */
export function fitText(text: string, width: number): string {
  return text
    .split("\n")
    .flatMap((l) => wrapLine(l, width))
    .join("\n");
}
