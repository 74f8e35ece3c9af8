// The scenario editor's graph model: the scenario document, its nodes and
// the references between them, and a layered layout for drawing.
//
// This module never touches the DOM, so `node --test` runs its tests
// (tests/editor/). Every function takes the scenario document, the object
// that the server's /api/scenario returns and /api/save takes, and edits it
// in place. The node types and fields are those that
// callsure.actors.sip.scenario checks.

export const NODE_TYPES = ["play", "menu", "collect", "callback", "hangup"];
export const CALLBACK_MODES = ["asap", "at_time", "predicted"];
export const OPTION_CALLBACK_MODES = ["asap", "predicted"];
export const DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"];
export const BUILTIN_VARIABLES = ["wait_minutes", "promised_time", "caller"];

// Fields allowed per node type, as the gateway's checker allows them.
export const NODE_FIELDS = {
  play: ["type", "prompts", "next"],
  menu: ["type", "prompts", "options", "timeout_s", "attempts", "invalid_prompts", "on_failure"],
  collect: ["type", "prompts", "digits", "variable", "timeout_s", "next", "on_failure"],
  callback: ["type", "mode", "time_variable", "next", "on_infeasible", "on_failure"],
  hangup: ["type", "prompts"],
};

// Node names the editor creates: no dots, because error paths such as
// nodes.offer.options.2.next separate names and fields with dots.
const NODE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export class ModelError extends Error {}

/** Return a copy of `document` with the shape the editor relies on. */
export function normalizeDocument(document) {
  const result = isObject(document) ? structuredClone(document) : {};
  if (result.version === undefined) result.version = 1;
  if (!isObject(result.nodes)) result.nodes = {};
  if (result.queue === undefined) result.queue = "general";
  return result;
}

/** Return a new node of `type` with the fields that type needs. */
export function defaultNode(type) {
  switch (type) {
    case "play":
      return { type, prompts: [] };
    case "menu":
      return { type, prompts: [], options: {}, timeout_s: 8, attempts: 3 };
    case "collect":
      return { type, prompts: [], digits: 4, variable: "digits", timeout_s: 10 };
    case "callback":
      return { type, mode: "asap" };
    case "hangup":
      return { type, prompts: [] };
    default:
      throw new ModelError(`unknown node type ${JSON.stringify(type)}; use one of ${NODE_TYPES.join(", ")}`);
  }
}

/** Throw a ModelError unless `name` can be a new node's name. */
export function checkNewName(document, name) {
  if (!NODE_NAME.test(name)) {
    throw new ModelError(
      `invalid node name ${JSON.stringify(name)}: use letters, digits, _ and -, starting with a letter or _`,
    );
  }
  if (Object.hasOwn(document.nodes, name)) {
    throw new ModelError(`a node named ${JSON.stringify(name)} already exists`);
  }
}

/** Add a node, which becomes the start when the start names no node. */
export function addNode(document, name, type) {
  checkNewName(document, name);
  document.nodes[name] = defaultNode(type);
  if (!Object.hasOwn(document.nodes, document.start)) document.start = name;
  return document.nodes[name];
}

/**
 * Return every edge of the graph, in document order.
 *
 * Each edge is {from, to, field, label}: `field` is the path inside the
 * source node (`next`, `options.1.next`) and `label` the text drawn on the
 * arrow (the DTMF key for menu options). Edges to missing nodes are kept,
 * with `to` naming the missing node.
 */
export function edges(document) {
  const result = [];
  for (const [name, node] of Object.entries(document.nodes)) {
    if (!isObject(node)) continue;
    if (node.type === "menu" && isObject(node.options)) {
      for (const [key, option] of Object.entries(node.options)) {
        if (isObject(option) && typeof option.next === "string") {
          const label = option.callback ? `${key} (${option.callback})` : key;
          result.push({ from: name, to: option.next, field: `options.${key}.next`, label });
        }
      }
    }
    for (const field of ["next", "on_failure", "on_infeasible"]) {
      if (typeof node[field] === "string") {
        result.push({ from: name, to: node[field], field, label: field === "next" ? "" : field });
      }
    }
  }
  return result;
}

/** Return the references to node `name`: {node, field}, node null for start. */
export function references(document, name) {
  const result = edges(document)
    .filter((edge) => edge.to === name)
    .map((edge) => ({ node: edge.from, field: edge.field }));
  if (document.start === name) result.unshift({ node: null, field: "start" });
  return result;
}

/** Return the references to nodes that do not exist. */
export function danglingReferences(document) {
  const result = edges(document)
    .filter((edge) => !Object.hasOwn(document.nodes, edge.to))
    .map((edge) => ({ node: edge.from, field: edge.field, target: edge.to }));
  if (!Object.hasOwn(document.nodes, document.start)) {
    result.unshift({ node: null, field: "start", target: document.start });
  }
  return result;
}

/**
 * Rename a node and every reference to it, keeping the node's place in
 * the document's order.
 */
export function renameNode(document, oldName, newName) {
  if (!Object.hasOwn(document.nodes, oldName)) {
    throw new ModelError(`node ${JSON.stringify(oldName)} not found`);
  }
  if (oldName === newName) return;
  checkNewName(document, newName);

  const nodes = {};
  for (const [name, node] of Object.entries(document.nodes)) {
    nodes[name === oldName ? newName : name] = node;
  }
  document.nodes = nodes;
  for (const node of Object.values(nodes)) {
    if (!isObject(node)) continue;
    for (const field of ["next", "on_failure", "on_infeasible"]) {
      if (node[field] === oldName) node[field] = newName;
    }
    if (isObject(node.options)) {
      for (const option of Object.values(node.options)) {
        if (isObject(option) && option.next === oldName) option.next = newName;
      }
    }
  }
  if (document.start === oldName) document.start = newName;
}

/**
 * Delete a node and return the references to it that are left dangling.
 *
 * The references stay in place, so the checker reports them and the user
 * decides where each should point now.
 */
export function deleteNode(document, name) {
  if (!Object.hasOwn(document.nodes, name)) {
    throw new ModelError(`node ${JSON.stringify(name)} not found`);
  }
  delete document.nodes[name];
  return references(document, name);
}

/** Make `name` the start node. */
export function setStart(document, name) {
  if (!Object.hasOwn(document.nodes, name)) {
    throw new ModelError(`node ${JSON.stringify(name)} not found`);
  }
  document.start = name;
}

/** Change a node's type, keeping the fields the new type also allows. */
export function changeType(document, name, type) {
  const old = document.nodes[name];
  const node = defaultNode(type);
  for (const field of NODE_FIELDS[type]) {
    if (field !== "type" && isObject(old) && old[field] !== undefined) {
      node[field] = structuredClone(old[field]);
    }
  }
  document.nodes[name] = node;
  return node;
}

/**
 * Set field `field` of node `name`; `undefined`, `""` and `null` remove it,
 * so optional fields left empty in a form do not reach the file.
 */
export function setField(document, name, field, value) {
  const node = document.nodes[name];
  if (value === undefined || value === "" || value === null) delete node[field];
  else node[field] = value;
}

/** Set the DTMF option `key` of a menu node: {next, callback?}. */
export function setOption(document, name, key, option) {
  const node = document.nodes[name];
  if (!isObject(node.options)) node.options = {};
  const value = { next: option.next };
  if (option.callback) value.callback = option.callback;
  node.options[key] = value;
}

/**
 * Move a menu option to another DTMF key. JavaScript objects list digit
 * keys in numeric order before other keys, so the options of a saved
 * scenario come in that order too.
 */
export function changeOptionKey(document, name, oldKey, newKey) {
  const node = document.nodes[name];
  if (oldKey === newKey) return;
  if (Object.hasOwn(node.options, newKey)) {
    throw new ModelError(`key ${newKey} already has an option`);
  }
  node.options[newKey] = node.options[oldKey];
  delete node.options[oldKey];
}

/** Remove the DTMF option `key` of a menu node. */
export function removeOption(document, name, key) {
  delete document.nodes[name].options[key];
}

/** Return the first DTMF key that a menu node does not use yet, or null. */
export function freeOptionKey(node) {
  const used = isObject(node.options) ? node.options : {};
  return DTMF_KEYS.find((key) => !Object.hasOwn(used, key)) ?? null;
}

/** Return the variables prompts may read: built-in and collected ones. */
export function variables(document) {
  const result = [...BUILTIN_VARIABLES];
  for (const node of Object.values(document.nodes)) {
    if (isObject(node) && node.type === "collect" && typeof node.variable === "string") {
      if (node.variable && !result.includes(node.variable)) result.push(node.variable);
    }
  }
  return result;
}

/** Move item `index` of a list one place up (-1) or down (+1). */
export function moveItem(list, index, step) {
  const target = index + step;
  if (target < 0 || target >= list.length) return;
  [list[index], list[target]] = [list[target], list[index]];
}

/**
 * Place the nodes in layers from the start node, left to right.
 *
 * A node's layer is its distance in edges from the start (breadth-first),
 * and its row the order in which the search reached it. Nodes that cannot
 * be reached from the start go in one more layer at the end. Returns
 * {positions: {name: {layer, row}}, layers, rows}.
 */
export function layout(document) {
  const names = Object.keys(document.nodes);
  const targets = new Map(names.map((name) => [name, []]));
  for (const edge of edges(document)) {
    if (targets.has(edge.to) && !targets.get(edge.from).includes(edge.to)) {
      targets.get(edge.from).push(edge.to);
    }
  }

  const layerOf = new Map();
  const columns = [];
  const place = (name, layer) => {
    layerOf.set(name, layer);
    columns[layer] ??= [];
    columns[layer].push(name);
  };
  if (targets.has(document.start)) {
    place(document.start, 0);
    const queue = [document.start];
    while (queue.length) {
      const name = queue.shift();
      for (const target of targets.get(name)) {
        if (!layerOf.has(target)) {
          place(target, layerOf.get(name) + 1);
          queue.push(target);
        }
      }
    }
  }
  const unreachable = names.filter((name) => !layerOf.has(name));
  const lastLayer = columns.length;
  for (const name of unreachable) place(name, lastLayer);

  const positions = {};
  columns.forEach((column, layer) => {
    column.forEach((name, row) => {
      positions[name] = { layer, row };
    });
  });
  return {
    positions,
    layers: columns.length,
    rows: Math.max(0, ...columns.map((column) => column.length)),
  };
}

/** Group validation errors by node name; document errors go under "". */
export function errorsByNode(errors) {
  const result = new Map();
  for (const error of errors) {
    const key = error.node ?? "";
    if (!result.has(key)) result.set(key, []);
    result.get(key).push(error);
  }
  return result;
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
