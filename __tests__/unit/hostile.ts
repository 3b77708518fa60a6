// Outside text that would be markup if it reached markdown as it is.

/** What a host's background-stop report may hold: lines that would be HTML, a heading and an image. */
export const HOSTILE_REPORT = '</details>\n<script>alert(1)</script>\n# heading\n![x](y)'
/** An environment a workflow built from a branch name. */
export const HOSTILE_ENVIRONMENT = 'x --> <img src=x> # heading'
