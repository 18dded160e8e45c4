/*
 * The life story, newest first, each line with the age it happened at
 * ("Age 3: ..."). The server keeps the whole story; "Earlier" pages older
 * lines in with the `story` message.
 */
import { earlierStory } from "./commands.js";
import { $, h, yearsOf } from "./dom.js";
import { busyWith } from "./net.js";
import { game } from "./store.js";

export function renderStory() {
  const yearDays = game.view ? game.view.year_days : 365;
  const items = [];
  for (let i = game.story.length - 1; i >= 0; i -= 1) {
    const line = game.story[i];
    const hasAge = line.age !== null && line.age !== undefined;
    items.push(
      h("li", { "data-line": String(game.storyFirst + i) },
        hasAge ? h("span", { class: "when", text: `Age ${yearsOf(line.age, yearDays)}: ` }) : null,
        line.text),
    );
  }
  $("feed").replaceChildren(...items);
  const button = $("story-earlier");
  button.hidden = game.storyFirst <= 0;
  button.disabled = busyWith("story");
  button.textContent = busyWith("story") ? "Remembering…" : `Earlier (${game.storyFirst} more)`;
}

export function wireStory() {
  $("story-earlier").addEventListener("click", earlierStory);
}
