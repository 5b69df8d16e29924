// The colour theme: the system's (`prefers-color-scheme`) unless the toggle chose light or dark,
// kept in this browser. The CSS holds the colours (app.css); charts, drawn on a canvas, read
// them through `palette()` at each draw, and redraw when the theme changes.
const KEY = "aura.theme";
const CHOICES = ["auto", "light", "dark"];
let cached = null;

/** The theme's colours by CSS variable name (without the dashes), read once per theme. */
export function palette() {
  if (!cached) {
    const style = getComputedStyle(document.documentElement);
    cached = Object.fromEntries(["text", "muted", "line", "accent", "ok", "warn", "bad"]
      .map((name) => [name, style.getPropertyValue(`--${name}`).trim()]));
  }
  return cached;
}

export class Theme {
  constructor() {
    this.listeners = [];
    this.media = window.matchMedia("(prefers-color-scheme: light)");
    this.media.addEventListener("change", () => this.apply());
    const stored = localStorage.getItem(KEY);
    this.choice = CHOICES.includes(stored) ? stored : "auto";
    this.apply();
  }

  get effective() { return this.choice === "auto" ? (this.media.matches ? "light" : "dark") : this.choice; }

  set(choice) {
    this.choice = CHOICES.includes(choice) ? choice : "auto";
    localStorage.setItem(KEY, this.choice);
    this.apply();
  }

  onChange(fn) { this.listeners.push(fn); }

  apply() {
    if (this.choice === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.dataset.theme = this.choice;
    cached = null;
    for (const fn of this.listeners) fn(this);
  }

  /** The header's button: auto → light → dark → auto. */
  button(node) {
    const show = () => {
      node.textContent = `theme: ${this.choice}`;
      node.setAttribute("aria-label", `colour theme: ${this.choice} (now ${this.effective}); change`);
    };
    node.addEventListener("click", () => this.set(CHOICES[(CHOICES.indexOf(this.choice) + 1) % CHOICES.length]));
    this.onChange(show);
    show();
  }
}
