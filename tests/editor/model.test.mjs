// Tests of the scenario editor's graph model, run with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as model from "../../actors/data/editor/model.mjs";

// A smaller version of the shipped surge scenario, as /api/scenario
// returns it.
function surge() {
  return model.normalizeDocument({
    version: 1,
    start: "greeting",
    queue: "general",
    nodes: {
      greeting: { type: "play", prompts: ["welcome"], next: "offer" },
      offer: {
        type: "menu",
        prompts: ["offer"],
        options: { 1: { next: "request_asap" }, 2: { next: "ask_time" } },
        on_failure: "stay_in_queue",
      },
      request_asap: { type: "callback", mode: "asap", next: "promise_asap", on_failure: "stay_in_queue" },
      ask_time: { type: "collect", prompts: [], digits: 4, variable: "requested_time", next: "request_asap", on_failure: "offer" },
      promise_asap: { type: "hangup", prompts: ["goodbye"] },
      stay_in_queue: { type: "hangup", prompts: ["stay"] },
    },
  });
}

test("edges label menu keys and failure links", () => {
  const found = model.edges(surge());
  const option = found.find((edge) => edge.from === "offer" && edge.field === "options.1.next");
  assert.equal(option.label, "1");
  assert.equal(option.to, "request_asap");
  const failure = found.find((edge) => edge.from === "offer" && edge.field === "on_failure");
  assert.equal(failure.label, "on_failure");
  assert.equal(failure.to, "stay_in_queue");
});

test("rename updates every reference", () => {
  const document = surge();
  const before = model.references(document, "offer").length;
  model.renameNode(document, "offer", "main_menu");
  assert.equal(Object.hasOwn(document.nodes, "offer"), false);
  assert.equal(document.nodes.greeting.next, "main_menu");
  assert.equal(document.nodes.ask_time.on_failure, "main_menu");
  assert.equal(model.references(document, "main_menu").length, before);
  assert.deepEqual(model.references(document, "offer"), []);
  assert.deepEqual(model.danglingReferences(document), []);
});

test("rename updates menu options and start", () => {
  const document = surge();
  model.renameNode(document, "request_asap", "asap");
  model.renameNode(document, "greeting", "hello");
  assert.equal(document.nodes.offer.options["1"].next, "asap");
  assert.equal(document.nodes.ask_time.next, "asap");
  assert.equal(document.start, "hello");
});

test("rename keeps node order", () => {
  const document = surge();
  const order = Object.keys(document.nodes);
  model.renameNode(document, "offer", "main_menu");
  order[order.indexOf("offer")] = "main_menu";
  assert.deepEqual(Object.keys(document.nodes), order);
});

test("rename rejects existing and invalid names", () => {
  const document = surge();
  assert.throws(() => model.renameNode(document, "offer", "greeting"), /already exists/);
  assert.throws(() => model.renameNode(document, "offer", "a.b"), /invalid node name/);
  assert.throws(() => model.renameNode(document, "offer", ""), /invalid node name/);
  assert.throws(() => model.renameNode(document, "missing", "x"), /not found/);
  assert.equal(document.nodes.greeting.next, "offer");
});

test("delete returns dangling references", () => {
  const document = surge();
  const dangling = model.deleteNode(document, "stay_in_queue");
  assert.deepEqual(
    dangling.map((reference) => `${reference.node}.${reference.field}`).sort(),
    ["offer.on_failure", "request_asap.on_failure"],
  );
  assert.equal(Object.hasOwn(document.nodes, "stay_in_queue"), false);
  assert.equal(model.danglingReferences(document).length, 2);
});

test("delete of start node reports start", () => {
  const document = surge();
  const dangling = model.deleteNode(document, "greeting");
  assert.deepEqual(dangling, [{ node: null, field: "start" }]);
});

test("add node gives type defaults", () => {
  const document = surge();
  const node = model.addNode(document, "ask_account", "collect");
  assert.equal(node.type, "collect");
  assert.equal(node.digits, 4);
  assert.ok(Object.hasOwn(document.nodes, "ask_account"));
  assert.throws(() => model.addNode(document, "offer", "play"), /already exists/);
  assert.throws(() => model.addNode(document, "new_node", "dance"), /unknown node type/);
});

test("first added node becomes start", () => {
  const document = model.normalizeDocument({});
  model.addNode(document, "hello", "play");
  assert.equal(document.start, "hello");
  model.addNode(document, "bye", "hangup");
  assert.equal(document.start, "hello");
});

test("set start requires existing node", () => {
  const document = surge();
  model.setStart(document, "offer");
  assert.equal(document.start, "offer");
  assert.throws(() => model.setStart(document, "missing"), /not found/);
});

test("change type keeps shared fields only", () => {
  const document = surge();
  const node = model.changeType(document, "offer", "play");
  assert.deepEqual(node.prompts, ["offer"]);
  assert.equal(node.options, undefined);
  assert.equal(node.on_failure, undefined);
  assert.equal(node.type, "play");
});

test("empty form values remove optional fields", () => {
  const document = surge();
  model.setField(document, "request_asap", "on_failure", "");
  assert.equal(Object.hasOwn(document.nodes.request_asap, "on_failure"), false);
  model.setField(document, "request_asap", "on_failure", "offer");
  assert.equal(document.nodes.request_asap.on_failure, "offer");
});

test("option keys change in place", () => {
  const document = surge();
  model.changeOptionKey(document, "offer", "1", "9");
  assert.deepEqual(document.nodes.offer.options["9"], { next: "request_asap" });
  assert.equal(Object.hasOwn(document.nodes.offer.options, "1"), false);
  assert.throws(() => model.changeOptionKey(document, "offer", "9", "2"), /already has an option/);
  model.setOption(document, "offer", "5", { next: "greeting", callback: "" });
  assert.deepEqual(document.nodes.offer.options["5"], { next: "greeting" });
  assert.equal(model.freeOptionKey(document.nodes.offer), "1");
  model.removeOption(document, "offer", "5");
  assert.equal(Object.hasOwn(document.nodes.offer.options, "5"), false);
});

test("variables include collected ones", () => {
  const found = model.variables(surge());
  assert.ok(found.includes("wait_minutes"));
  assert.ok(found.includes("requested_time"));
});

test("layout layers follow distance from start", () => {
  const document = surge();
  const { positions, layers } = model.layout(document);
  assert.equal(positions.greeting.layer, 0);
  assert.equal(positions.offer.layer, 1);
  assert.equal(positions.request_asap.layer, 2);
  assert.equal(positions.stay_in_queue.layer, 2);
  assert.equal(positions.promise_asap.layer, 3);
  assert.ok(layers >= 4);
  const cells = new Set(Object.values(positions).map((p) => `${p.layer}:${p.row}`));
  assert.equal(cells.size, Object.keys(document.nodes).length);
});

test("layout puts unreachable nodes last", () => {
  const document = surge();
  model.addNode(document, "orphan", "hangup");
  const { positions, layers } = model.layout(document);
  assert.equal(positions.orphan.layer, layers - 1);
  for (const [name, position] of Object.entries(positions)) {
    if (name !== "orphan") assert.ok(position.layer < layers - 1, name);
  }
});

test("layout survives missing start and dangling edges", () => {
  const document = surge();
  model.deleteNode(document, "greeting");
  model.deleteNode(document, "promise_asap");
  const { positions } = model.layout(document);
  assert.equal(Object.keys(positions).length, Object.keys(document.nodes).length);
});

test("move item swaps neighbours within bounds", () => {
  const list = ["a", "b", "c"];
  model.moveItem(list, 0, 1);
  assert.deepEqual(list, ["b", "a", "c"]);
  model.moveItem(list, 0, -1);
  assert.deepEqual(list, ["b", "a", "c"]);
});

test("errors group by node", () => {
  const grouped = model.errorsByNode([
    { node: "offer", field: "options.1.next", message: "unknown node 'x'" },
    { node: null, field: "start", message: "unknown node 'y'" },
    { node: "offer", field: "timeout_s", message: "expected a positive number" },
  ]);
  assert.equal(grouped.get("offer").length, 2);
  assert.equal(grouped.get("").length, 1);
});
