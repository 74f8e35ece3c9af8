// The scenario editor page: draws the graph, builds the node forms and
// talks to the server of `callsure scenario edit`. The editing logic is in
// model.mjs; this file only reads and writes the DOM.
import * as model from "./model.mjs";

const SVG = "http://www.w3.org/2000/svg";
const BOX_WIDTH = 170;
const BOX_HEIGHT = 46;
const GAP_X = 110;
const GAP_Y = 40;
const MARGIN = 40;
const VALIDATE_DELAY_MS = 250;

// The token comes in the URL fragment, which browsers do not send to servers.
const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";

const state = {
  document: null,
  path: "",
  prompts: [],
  errors: [],
  selected: null,
  dirty: false,
  validateTimer: null,
  validateSequence: 0,
};

const byId = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== undefined && value !== null) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function svgElement(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

async function api(method, path, body) {
  const headers = { "X-Callsure-Token": token };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data;
  try {
    data = await response.json();
  } catch {
    data = { error: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, ok: response.ok, data };
}

function showStatus(message, isError = false) {
  const status = byId("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// Editing -----------------------------------------------------------------

// Apply one edit, then redraw everything and validate again. The focused
// control is found again by id, so keyboard users keep their place.
function edit(change) {
  try {
    change();
  } catch (error) {
    if (error instanceof model.ModelError) {
      showStatus(error.message, true);
      return false;
    }
    throw error;
  }
  state.dirty = true;
  showStatus("Unsaved changes.");
  render();
  scheduleValidation();
  return true;
}

function select(name) {
  state.selected = name;
  render();
}

function scheduleValidation() {
  clearTimeout(state.validateTimer);
  state.validateTimer = setTimeout(validate, VALIDATE_DELAY_MS);
}

async function validate() {
  const sequence = ++state.validateSequence;
  const { ok, data } = await api("POST", "/api/validate", state.document);
  // An older response arriving after a newer one would show stale errors.
  if (sequence !== state.validateSequence) return;
  if (!ok) {
    showStatus(`Validation failed: ${data.error}`, true);
    return;
  }
  state.errors = data.errors;
  renderGraph();
  renderErrors();
  markFields();
}

async function save() {
  const { status, ok, data } = await api("POST", "/api/save", state.document);
  if (ok) {
    state.dirty = false;
    state.errors = [];
    const backup = data.backup ? ` The previous version is in ${data.backup}.` : "";
    showStatus(`Saved ${data.saved}.${backup}`);
  } else if (status === 422) {
    state.errors = data.errors;
    showStatus(`Not saved: the scenario has ${data.errors.length} error(s), listed under Errors.`, true);
  } else {
    showStatus(`Not saved: ${data.error}`, true);
  }
  render();
}

async function playPrompt(name) {
  // fetch sends the token header, which an <audio src> request cannot.
  const response = await fetch(`/api/prompts/${encodeURIComponent(name)}.wav`, {
    headers: { "X-Callsure-Token": token },
  });
  if (!response.ok) {
    showStatus(`Failed to play prompt ${name}: ${response.status} ${response.statusText}`, true);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const audio = new Audio(url);
  audio.addEventListener("ended", () => URL.revokeObjectURL(url));
  try {
    await audio.play();
  } catch (error) {
    URL.revokeObjectURL(url);
    showStatus(`Failed to play prompt ${name}: ${error.message}`, true);
  }
}

// Rendering -----------------------------------------------------------------

function render() {
  const focusedId = document.activeElement?.id;
  renderScenario();
  renderGraph();
  renderPanel();
  renderErrors();
  markFields();
  if (focusedId && byId(focusedId)) byId(focusedId).focus();
}

function renderScenario() {
  const start = byId("scenario-start");
  start.replaceChildren(...nodeChoices(state.document.start, false));
  byId("scenario-queue").value = state.document.queue ?? "";
}

function nodeChoices(current, allowNone, noneText = "(none)") {
  const choices = [];
  if (allowNone) choices.push(element("option", { value: "" }, noneText));
  for (const name of Object.keys(state.document.nodes)) {
    choices.push(element("option", { value: name, selected: name === current }, name));
  }
  if (current && !Object.hasOwn(state.document.nodes, current)) {
    choices.push(element("option", { value: current, selected: true }, `${current} (missing)`));
  }
  return choices;
}

function boxPosition(position) {
  return {
    x: MARGIN + position.layer * (BOX_WIDTH + GAP_X),
    y: MARGIN + position.row * (BOX_HEIGHT + GAP_Y),
  };
}

function renderGraph() {
  const svg = byId("graph");
  const { positions, layers, rows } = model.layout(state.document);
  const errors = model.errorsByNode(state.errors);
  svg.replaceChildren();
  svg.setAttribute("width", 2 * MARGIN + Math.max(layers, 1) * (BOX_WIDTH + GAP_X));
  svg.setAttribute("height", 2 * MARGIN + Math.max(rows, 1) * (BOX_HEIGHT + GAP_Y) + 60);
  svg.append(
    svgElement(
      "defs",
      {},
      svgElement(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
        svgElement("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }),
      ),
    ),
  );

  // Each edge leaves its source at its own slot, so fanned-out arrows and
  // their labels do not start on top of each other.
  const outgoing = new Map();
  const allEdges = model.edges(state.document);
  for (const edge of allEdges) outgoing.set(edge.from, (outgoing.get(edge.from) ?? 0) + 1);
  const used = new Map();
  for (const edge of allEdges) {
    const slot = used.get(edge.from) ?? 0;
    used.set(edge.from, slot + 1);
    svg.append(drawEdge(edge, positions, slot, outgoing.get(edge.from)));
  }
  for (const [name, position] of Object.entries(positions)) {
    svg.append(drawNode(name, boxPosition(position), errors.get(name) ?? []));
  }
}

// Return the point at parameter t of the cubic Bezier curve p0 ... p3.
function bezierPoint([p0, p1, p2, p3], t) {
  const u = 1 - t;
  const at = (axis) => u ** 3 * p0[axis] + 3 * u * u * t * p1[axis] + 3 * u * t * t * p2[axis] + t ** 3 * p3[axis];
  return { x: at(0), y: at(1) };
}

function drawEdge(edge, positions, slot, slots) {
  const kind = edge.field.startsWith("options.") ? "option" : edge.field;
  const group = svgElement("g", { class: `edge edge-${kind}` });
  const source = boxPosition(positions[edge.from]);
  // Slots spread over the box's height, or its width for back edges.
  const share = slots > 1 ? slot / (slots - 1) : 0.5;
  const slotY = source.y + 8 + share * (BOX_HEIGHT - 16);
  const slotX = source.x + 20 + share * (BOX_WIDTH - 40);

  if (!positions[edge.to]) {
    // A reference to a missing node: a short dashed stub named after it.
    const x = source.x + BOX_WIDTH;
    group.classList.add("edge-missing");
    group.append(
      svgElement("title", {}, `${edge.field}: node ${edge.to} does not exist`),
      svgElement("path", { d: `M ${x} ${slotY} h 24`, "marker-end": "url(#arrow)" }),
      svgElement("text", { x: x + 28, y: slotY + 4 }, `${edge.to}?`),
    );
    return group;
  }

  const target = boxPosition(positions[edge.to]);
  const sourceLayer = positions[edge.from].layer;
  const targetLayer = positions[edge.to].layer;
  let points;
  let labelAt;
  if (targetLayer > sourceLayer) {
    const start = [source.x + BOX_WIDTH, slotY];
    const end = [target.x, target.y + BOX_HEIGHT / 2];
    const bend = (end[0] - start[0]) / 2;
    points = [start, [start[0] + bend, start[1]], [end[0] - bend, end[1]], end];
    labelAt = 0.3;
  } else if (targetLayer === sourceLayer) {
    // Edges within a layer bend out to the right of the column.
    const x = source.x + BOX_WIDTH;
    const end = [x, target.y + BOX_HEIGHT / 2];
    const reach = 40 + 12 * slot;
    points = [[x, slotY], [x + reach, slotY], [x + reach, end[1]], end];
    labelAt = 0.5;
  } else {
    // Back edges loop below the boxes.
    const start = [slotX, source.y + BOX_HEIGHT];
    const end = [target.x + BOX_WIDTH / 2, target.y + BOX_HEIGHT];
    const depth = 30 + 10 * slot + Math.abs(start[0] - end[0]) / 8;
    points = [start, [start[0], start[1] + depth], [end[0], end[1] + depth], end];
    labelAt = 0.25;
  }
  const [p0, p1, p2, p3] = points;
  const path = `M ${p0} C ${p1} ${p2} ${p3}`;
  const { x: labelX, y: labelY } = bezierPoint(points, labelAt);

  group.append(svgElement("path", { d: path, "marker-end": "url(#arrow)" }));
  if (edge.label) {
    group.append(svgElement("text", { x: labelX, y: labelY - 3, "text-anchor": "middle" }, edge.label));
  }
  return group;
}

function drawNode(name, { x, y }, errors) {
  const node = state.document.nodes[name];
  const type = model.NODE_TYPES.includes(node?.type) ? node.type : "unknown";
  const isStart = state.document.start === name;
  const classes = ["node", `node-${type}`];
  if (isStart) classes.push("start");
  if (errors.length) classes.push("invalid");
  if (state.selected === name) classes.push("selected");
  const description = [`${name}, ${type} node`];
  if (isStart) description.push("start node");
  if (errors.length) description.push(`${errors.length} error(s)`);

  const group = svgElement("g", {
    class: classes.join(" "),
    tabindex: "0",
    role: "button",
    "aria-label": description.join(", "),
    "aria-pressed": String(state.selected === name),
    transform: `translate(${x} ${y})`,
  });
  group.append(
    svgElement("rect", { width: BOX_WIDTH, height: BOX_HEIGHT, rx: "6" }),
    svgElement("text", { x: "10", y: "19", class: "node-name" }, name),
    svgElement("text", { x: "10", y: "36", class: "node-type" }, errors.length ? `${type} — ${errors.length} error(s)` : type),
  );
  if (isStart) {
    group.append(svgElement("text", { x: "0", y: "-6", class: "start-tag" }, "▶ start"));
  }
  group.addEventListener("click", () => select(name));
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      select(name);
      byId("node-form").querySelector("input, select, button")?.focus();
    }
  });
  return group;
}

function renderErrors() {
  const list = byId("error-list");
  list.replaceChildren();
  if (!state.errors.length) {
    list.append(element("li", { class: "ok" }, "No errors."));
    return;
  }
  for (const error of state.errors) {
    const text = `${error.path}: ${error.message}`;
    if (error.node !== null && Object.hasOwn(state.document.nodes, error.node)) {
      list.append(element("li", {}, element("button", { type: "button", class: "link", onclick: () => select(error.node) }, text)));
    } else {
      list.append(element("li", {}, text));
    }
  }
}

// Mark the controls whose data-field matches an error of the selected node
// (or of the document, for the scenario panel).
function markFields() {
  for (const control of document.querySelectorAll("[data-field]")) {
    control.removeAttribute("aria-invalid");
  }
  const errors = state.errors.filter((error) => error.node === null || error.node === state.selected);
  for (const error of errors) {
    const scope = error.node === null ? byId("scenario-panel") : byId("node-form");
    for (const control of scope.querySelectorAll("[data-field]")) {
      const field = control.dataset.field;
      if (field === error.field || error.field.startsWith(`${field}.`)) {
        control.setAttribute("aria-invalid", "true");
      }
    }
  }
  const box = byId("node-errors");
  if (box) {
    const own = state.errors.filter((error) => error.node === state.selected);
    box.replaceChildren(...own.map((error) => element("li", {}, `${error.field || "node"}: ${error.message}`)));
    box.hidden = !own.length;
  }
}

// Node forms ------------------------------------------------------------------

function renderPanel() {
  const form = byId("node-form");
  const name = state.selected;
  if (name === null || !Object.hasOwn(state.document.nodes, name)) {
    state.selected = null;
    form.replaceChildren(element("p", {}, "Select a node in the graph to edit it."));
    byId("node-heading").textContent = "Node";
    return;
  }
  // A hand-written file may contain a node that is not a mapping (`name:`
  // with no value). Until it is one, only its type can be chosen.
  const stored = state.document.nodes[name];
  const isMapping = typeof stored === "object" && stored !== null && !Array.isArray(stored);
  const node = isMapping ? stored : {};
  byId("node-heading").textContent = `Node ${name}`;
  form.replaceChildren(
    element("ul", { id: "node-errors", class: "errors", "aria-label": "Errors of this node" }),
    renameControls(name),
    typeControl(name, node),
    element(
      "div",
      { class: "buttons" },
      element("button", { type: "button", id: "set-start", disabled: state.document.start === name, onclick: () => edit(() => model.setStart(state.document, name)) }, "Set as start"),
      element("button", { type: "button", id: "delete-node", class: "danger", onclick: () => deleteSelected(name) }, "Delete node"),
    ),
    ...typeFields(name, node),
  );
}

function renameControls(name) {
  const input = element("input", { id: "node-name", value: name, autocomplete: "off" });
  const rename = () => {
    const newName = input.value.trim();
    if (newName !== name && edit(() => model.renameNode(state.document, name, newName))) {
      state.selected = newName;
      render();
      showStatus(`Renamed ${name} to ${newName}, with every reference to it.`);
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") rename();
  });
  return element(
    "div",
    { class: "row" },
    element("label", { for: "node-name" }, "Name"),
    input,
    element("button", { type: "button", id: "rename-node", onclick: rename }, "Rename"),
  );
}

function deleteSelected(name) {
  const remaining = model
    .references(state.document, name)
    .filter((reference) => reference.node !== name)
    .map((reference) => (reference.node === null ? "start" : `${reference.node}.${reference.field}`));
  let question = `Delete node ${name}?`;
  if (remaining.length) {
    question += `\n\nThese references will point to a missing node until you change them:\n${remaining.join("\n")}`;
  }
  if (!confirm(question)) return;
  edit(() => model.deleteNode(state.document, name));
  state.selected = null;
  render();
  if (remaining.length) showStatus(`Deleted ${name}; ${remaining.length} reference(s) to it are left dangling.`, true);
}

function typeControl(name, node) {
  const select = element("select", {
    id: "node-type",
    "data-field": "type",
    onchange: (event) => edit(() => model.changeType(state.document, name, event.target.value)),
  });
  for (const type of model.NODE_TYPES) {
    select.append(element("option", { value: type, selected: node.type === type }, type));
  }
  if (!model.NODE_TYPES.includes(node.type)) {
    select.append(element("option", { value: "", selected: true }, `${node.type ?? "no type"} (unknown)`));
  }
  return element("div", { class: "row" }, element("label", { for: "node-type" }, "Type"), select);
}

function typeFields(name, node) {
  switch (node.type) {
    case "play":
      return [promptList(name, node, "prompts", "Prompts"), linkField(name, node, "next", "Next node (none ends the call)")];
    case "menu":
      return [
        promptList(name, node, "prompts", "Prompts"),
        optionList(name, node),
        numberField(name, node, "timeout_s", "Timeout per attempt (seconds)", { min: "0.5", step: "0.5", placeholder: "8" }),
        numberField(name, node, "attempts", "Attempts", { min: "1", step: "1", placeholder: "3" }),
        promptList(name, node, "invalid_prompts", "Prompts after an invalid key"),
        linkField(name, node, "on_failure", "After the last attempt (none ends the call)"),
      ];
    case "collect":
      return [
        promptList(name, node, "prompts", "Prompts"),
        numberField(name, node, "digits", "Digits to collect", { min: "1", step: "1" }),
        textField(name, node, "variable", "Variable to store the digits in"),
        numberField(name, node, "timeout_s", "Timeout (seconds)", { min: "0.5", step: "0.5", placeholder: "10" }),
        linkField(name, node, "next", "Next node"),
        linkField(name, node, "on_failure", "On failure"),
      ];
    case "callback":
      return [
        choiceField(name, node, "mode", "Callback mode", model.CALLBACK_MODES, false),
        ...(node.mode === "at_time"
          ? [choiceField(name, node, "time_variable", "Variable holding the time (HHMM)", model.variables(state.document), true)]
          : []),
        linkField(name, node, "next", "Next node (callback requested)"),
        linkField(name, node, "on_infeasible", "If the time is not available"),
        linkField(name, node, "on_failure", "On failure"),
      ];
    case "hangup":
      return [promptList(name, node, "prompts", "Prompts before hanging up")];
    default:
      return [element("p", {}, "Choose a type to edit this node's fields.")];
  }
}

function labelled(id, text, control) {
  return element("div", { class: "row" }, element("label", { for: id }, text), control);
}

function linkField(name, node, field, text) {
  const id = `field-${field}`;
  const select = element("select", {
    id,
    "data-field": field,
    onchange: (event) => edit(() => model.setField(state.document, name, field, event.target.value)),
  });
  select.append(...nodeChoices(node[field], true));
  return labelled(id, text, select);
}

function numberField(name, node, field, text, attributes) {
  const id = `field-${field}`;
  const input = element("input", {
    id,
    type: "number",
    "data-field": field,
    value: node[field] ?? "",
    ...attributes,
    onchange: (event) => {
      const value = event.target.value === "" ? undefined : Number(event.target.value);
      edit(() => model.setField(state.document, name, field, value));
    },
  });
  return labelled(id, text, input);
}

function textField(name, node, field, text) {
  const id = `field-${field}`;
  const input = element("input", {
    id,
    "data-field": field,
    value: node[field] ?? "",
    autocomplete: "off",
    onchange: (event) => edit(() => model.setField(state.document, name, field, event.target.value.trim())),
  });
  return labelled(id, text, input);
}

function choiceField(name, node, field, text, choices, allowNone) {
  const id = `field-${field}`;
  const select = element("select", {
    id,
    "data-field": field,
    onchange: (event) => edit(() => model.setField(state.document, name, field, event.target.value)),
  });
  if (allowNone) select.append(element("option", { value: "" }, "(none)"));
  for (const choice of choices) {
    select.append(element("option", { value: choice, selected: node[field] === choice }, choice));
  }
  if (node[field] !== undefined && !choices.includes(node[field])) {
    select.append(element("option", { value: node[field], selected: true }, `${node[field]} (unknown)`));
  }
  return labelled(id, text, select);
}

function promptChoices(current) {
  const choices = [
    ...state.prompts,
    ...model.variables(state.document).map((variable) => `$${variable}`),
  ];
  const options = choices.map((choice) => element("option", { value: choice, selected: choice === current }, choice));
  if (!choices.includes(current)) {
    options.push(element("option", { value: current, selected: true }, `${current} (not in the library)`));
  }
  return options;
}

function promptList(name, node, field, legend) {
  const prompts = Array.isArray(node[field]) ? node[field] : [];
  const list = element("ol", { class: "prompt-list" });
  prompts.forEach((prompt, index) => {
    const id = `field-${field}-${index}`;
    const position = `${legend} item ${index + 1}`;
    const update = (change) => edit(() => {
      const copy = [...prompts];
      change(copy);
      model.setField(state.document, name, field, copy);
    });
    list.append(
      element(
        "li",
        {},
        element("label", { for: id, class: "visually-hidden" }, position),
        element("select", { id, "data-field": `${field}.${index}`, onchange: (event) => update((copy) => { copy[index] = event.target.value; }) }, ...promptChoices(prompt)),
        element("button", { type: "button", id: `${id}-play`, "aria-label": `Play ${prompt}`, disabled: prompt.startsWith("$"), onclick: () => playPrompt(prompt) }, "▶"),
        element("button", { type: "button", id: `${id}-up`, "aria-label": `Move ${position} up`, disabled: index === 0, onclick: () => update((copy) => model.moveItem(copy, index, -1)) }, "↑"),
        element("button", { type: "button", id: `${id}-down`, "aria-label": `Move ${position} down`, disabled: index === prompts.length - 1, onclick: () => update((copy) => model.moveItem(copy, index, 1)) }, "↓"),
        element("button", { type: "button", id: `${id}-remove`, "aria-label": `Remove ${position}`, onclick: () => update((copy) => copy.splice(index, 1)) }, "✕"),
      ),
    );
  });
  const add = element("button", {
    type: "button",
    id: `field-${field}-add`,
    onclick: () => edit(() => model.setField(state.document, name, field, [...prompts, state.prompts[0] ?? "$caller"])),
  }, "Add prompt");
  return element("fieldset", { "data-field": field }, element("legend", {}, legend), list, add);
}

function optionList(name, node) {
  const options = node.options && typeof node.options === "object" ? node.options : {};
  const rows = Object.entries(options).map(([key, option]) => {
    const prefix = `option-${encodeURIComponent(key)}`;
    const keySelect = element("select", {
      id: `${prefix}-key`,
      "aria-label": `DTMF key of option ${key}`,
      "data-field": `options.${key}`,
      onchange: (event) => edit(() => model.changeOptionKey(state.document, name, key, event.target.value)),
    });
    for (const candidate of model.DTMF_KEYS) {
      if (candidate === key || !Object.hasOwn(options, candidate)) {
        keySelect.append(element("option", { value: candidate, selected: candidate === key }, candidate));
      }
    }
    const nextSelect = element("select", {
      id: `${prefix}-next`,
      "aria-label": `Next node for key ${key}`,
      "data-field": `options.${key}.next`,
      onchange: (event) => edit(() => model.setOption(state.document, name, key, { ...option, next: event.target.value })),
    });
    nextSelect.append(...nodeChoices(option?.next, false));
    const callbackSelect = element("select", {
      id: `${prefix}-callback`,
      "aria-label": `Callback mode for key ${key}`,
      "data-field": `options.${key}.callback`,
      onchange: (event) => edit(() => model.setOption(state.document, name, key, { ...option, callback: event.target.value })),
    });
    callbackSelect.append(element("option", { value: "" }, "no callback"));
    for (const mode of model.OPTION_CALLBACK_MODES) {
      callbackSelect.append(element("option", { value: mode, selected: option?.callback === mode }, mode));
    }
    return element(
      "tr",
      {},
      element("td", {}, keySelect),
      element("td", {}, nextSelect),
      element("td", {}, callbackSelect),
      element("td", {}, element("button", { type: "button", id: `${prefix}-remove`, "aria-label": `Remove option ${key}`, onclick: () => edit(() => model.removeOption(state.document, name, key)) }, "✕")),
    );
  });
  const addOption = () => {
    const key = model.freeOptionKey(node);
    if (key === null) {
      showStatus("Every DTMF key already has an option.", true);
      return;
    }
    const target = Object.keys(state.document.nodes).find((other) => other !== name) ?? name;
    edit(() => model.setOption(state.document, name, key, { next: target }));
  };
  return element(
    "fieldset",
    { "data-field": "options" },
    element("legend", {}, "DTMF options"),
    element(
      "table",
      {},
      element("thead", {}, element("tr", {}, element("th", {}, "Key"), element("th", {}, "Next node"), element("th", {}, "Callback"), element("th", {}, element("span", { class: "visually-hidden" }, "Remove")))),
      element("tbody", {}, ...rows),
    ),
    element("button", { type: "button", id: "option-add", onclick: addOption }, "Add option"),
  );
}

// Start -----------------------------------------------------------------------

async function start() {
  for (const type of model.NODE_TYPES) byId("new-type").append(element("option", { value: type }, type));
  if (!token) {
    showStatus("The URL has no token: open the URL that `callsure scenario edit` printed.", true);
    return;
  }
  const [scenario, prompts] = await Promise.all([api("GET", "/api/scenario"), api("GET", "/api/prompts")]);
  if (!scenario.ok || !prompts.ok) {
    showStatus(`Failed to load the scenario: ${(scenario.ok ? prompts : scenario).data.error}`, true);
    return;
  }
  state.document = model.normalizeDocument(scenario.data.document);
  state.path = scenario.data.path;
  state.errors = scenario.data.errors;
  state.prompts = prompts.data.prompts;
  byId("file-path").textContent = state.path;
  document.title = `${state.path} — callsure scenario editor`;

  byId("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = byId("new-name").value.trim();
    const type = byId("new-type").value;
    if (edit(() => model.addNode(state.document, name, type))) {
      byId("new-name").value = "";
      select(name);
      showStatus(`Added ${type} node ${name}.`);
    }
  });
  byId("save-button").addEventListener("click", save);
  byId("scenario-start").addEventListener("change", (event) => edit(() => model.setStart(state.document, event.target.value)));
  byId("scenario-queue").addEventListener("change", (event) => edit(() => {
    state.document.queue = event.target.value.trim();
  }));
  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) event.preventDefault();
  });
  render();
  const loaded = state.errors.length ? `Loaded with ${state.errors.length} error(s).` : "Loaded.";
  const comments = scenario.data.comment_lines;
  showStatus(comments ? `${loaded} Saving drops the ${comments} comment line(s) of the file.` : loaded);
}

start().catch((error) => showStatus(`The editor failed: ${error.message}`, true));
