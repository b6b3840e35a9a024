// The clinvk API explorer: reads openapi.json from the server that serves
// this page and lets the reader send requests to it.  Everything it needs is
// in this page; it talks to no other host.
(function () {
  "use strict";

  // The page is served at <prefix>/docs; the API lives under <prefix>/.
  var base = new URL(".", window.location.href);
  var doc = null;
  // The keys of a path item that are operations; the others (parameters,
  // summary, servers, ...) apply to the path as a whole.
  var METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

  function el(tag, attrs) {
    var node = document.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // Follow local references ("#/components/schemas/X",
  // "#/components/parameters/Y", ...) to what they name.
  function resolve(node) {
    var seen = 0;
    while (node && typeof node.$ref === "string" && node.$ref.indexOf("#/") === 0 && seen++ < 32) {
      node = node.$ref.slice(2).split("/").reduce(function (found, token) {
        return found === undefined || found === null
          ? undefined
          : found[token.replace(/~1/g, "/").replace(/~0/g, "~")];
      }, doc);
    }
    return node || {};
  }

  // The parameters of an operation: its own, and those of its path that it
  // does not redefine (same name and location).
  function parametersOf(item, op) {
    var own = (op.parameters || []).map(resolve);
    var shared = (item.parameters || []).map(resolve).filter(function (parameter) {
      return !own.some(function (mine) {
        return mine.name === parameter.name && mine["in"] === parameter["in"];
      });
    });
    return shared.concat(own);
  }

  function typeOf(schema) {
    var type = schema.type;
    if (Array.isArray(type)) type = type.filter(function (t) { return t !== "null"; })[0];
    return type || (schema.properties ? "object" : "any");
  }

  // A plausible request body: examples and defaults first, then one
  // value per required property.
  function example(schema, depth) {
    schema = resolve(schema);
    if (depth > 6) return null;
    if (schema.examples && schema.examples.length) return schema.examples[0];
    if (schema["default"] !== undefined) return schema["default"];
    if (schema["enum"]) return schema["enum"][0];
    switch (typeOf(schema)) {
      case "object":
        var result = {};
        (schema.required || []).forEach(function (name) {
          result[name] = example((schema.properties || {})[name] || {}, depth + 1);
        });
        return result;
      case "array": return [example(schema.items || {}, depth + 1)];
      case "integer": case "number": return 0;
      case "boolean": return false;
      case "string": return "";
      default: return null;
    }
  }

  function schemaTree(schema, depth) {
    schema = resolve(schema);
    var list = el("ul", { className: "schema" });
    var required = schema.required || [];
    Object.keys(schema.properties || {}).forEach(function (name) {
      var prop = resolve(schema.properties[name]);
      var item = el("li", null,
        el("span", { text: name }), " ",
        el("span", { className: "type", text: typeOf(prop) }),
        required.indexOf(name) >= 0 ? el("span", { className: "req", text: " required" }) : null,
        prop.description ? el("span", { className: "desc", text: " — " + prop.description }) : null);
      var nested = typeOf(prop) === "array" ? resolve(prop.items || {}) : prop;
      if (depth < 4 && nested.properties) item.appendChild(schemaTree(nested, depth + 1));
      list.appendChild(item);
    });
    return list;
  }

  function requestHeaders(hasBody) {
    var headers = {};
    var key = document.getElementById("api-key").value.trim();
    if (key) headers["Authorization"] = "Bearer " + key;
    if (hasBody) headers["Content-Type"] = "application/json";
    return headers;
  }

  async function send(path, method, inputs, textarea, output, button) {
    var url = path.replace(/\{(\w+)\}/g, function (_, name) {
      return encodeURIComponent(inputs.path[name].value);
    });
    var target = new URL(url.replace(/^\//, ""), base);
    Object.keys(inputs.query).forEach(function (name) {
      var value = inputs.query[name].value;
      if (value !== "") target.searchParams.set(name, value);
    });
    var status = el("div", { className: "status", text: method.toUpperCase() + " " + target.pathname + target.search + " …" });
    var pre = el("pre");
    output.replaceChildren(status, pre);
    button.disabled = true;
    try {
      var response = await fetch(target, {
        method: method.toUpperCase(),
        headers: requestHeaders(!!textarea),
        body: textarea ? textarea.value : undefined,
      });
      status.textContent = response.status + " " + response.statusText + "  ·  " +
        (response.headers.get("Content-Type") || "no content type");
      // Show streamed bodies (NDJSON, SSE) as they arrive.
      var reader = response.body ? response.body.getReader() : null;
      var decoder = new TextDecoder();
      var text = "";
      while (reader) {
        var chunk = await reader.read();
        if (chunk.done) break;
        text += decoder.decode(chunk.value, { stream: true });
        pre.textContent = text;
      }
      text += decoder.decode();
      var type = response.headers.get("Content-Type") || "";
      if (/json/.test(type) && !/ndjson/.test(type)) {
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* keep the raw text */ }
      }
      pre.textContent = text;
    } catch (error) {
      status.textContent = "Request failed: " + error.message;
    } finally {
      button.disabled = false;
    }
  }

  function operationView(path, method, op, parameters) {
    var inputs = { path: {}, query: {} };
    var body = el("div", { className: "body" });
    if (op.description) body.appendChild(el("p", { text: op.description }));

    if (parameters.length) {
      var params = el("div", { className: "params" }, el("h3", { text: "Parameters" }));
      parameters.forEach(function (parameter) {
        var input = el("input", { name: parameter.name, placeholder: parameter.description || parameter["in"] });
        inputs[parameter["in"] === "path" ? "path" : "query"][parameter.name] = input;
        params.appendChild(el("label", null, parameter.name + (parameter.required ? " *" : ""), input));
      });
      body.appendChild(params);
    }

    var textarea = null;
    var requestBody = resolve(op.requestBody);
    var content = requestBody.content && requestBody.content["application/json"];
    if (content) {
      body.appendChild(el("div", null, el("h3", { text: "Request body" }), schemaTree(content.schema, 0)));
      textarea = el("textarea", { "aria-label": "Request body", spellcheck: "false" });
      textarea.value = JSON.stringify(example(content.schema, 0), null, 2);
      body.appendChild(textarea);
    }

    var ok = resolve((op.responses || {})["200"]);
    var okJson = ok.content && ok.content["application/json"];
    if (okJson) body.appendChild(el("div", null, el("h3", { text: "Response" }), schemaTree(okJson.schema, 0)));

    var output = el("div", { className: "response" });
    var button = el("button", { className: "send", type: "button", text: "Send request" });
    button.addEventListener("click", function () { send(path, method, inputs, textarea, output, button); });
    body.appendChild(button);
    body.appendChild(output);

    var known = ["get", "post", "delete"].indexOf(method) >= 0 ? method : "other";
    var id = op.operationId || (method + path).replace(/[^A-Za-z0-9_-]+/g, "-");
    return el("details", { className: "op", id: "op-" + id, "data-operation-id": id },
      el("summary", null,
        el("span", { className: "method " + known, text: method.toUpperCase() }),
        el("span", { className: "path", text: path }),
        el("span", { className: "muted", text: op.summary || "" })),
      body);
  }

  function render() {
    document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
    document.getElementById("description").textContent = doc.info.description || "";
    var byTag = {};
    var tags = (doc.tags || []).map(function (tag) { return tag.name; });
    Object.keys(doc.paths).forEach(function (path) {
      var item = resolve(doc.paths[path]);
      Object.keys(item).forEach(function (method) {
        if (METHODS.indexOf(method) < 0) return;
        var op = item[method];
        var tag = (op.tags || ["Other"])[0];
        if (tags.indexOf(tag) < 0) tags.push(tag);
        (byTag[tag] = byTag[tag] || []).push(operationView(path, method, op, parametersOf(item, op)));
      });
    });
    var nav = document.getElementById("nav");
    var section = document.getElementById("operations");
    nav.replaceChildren();
    section.replaceChildren();
    tags.forEach(function (tag) {
      if (!byTag[tag]) return;
      nav.appendChild(el("h2", { text: tag }));
      section.appendChild(el("h2", { className: "tag", text: tag }));
      byTag[tag].forEach(function (view) {
        var link = el("a", { href: "#" + view.id, text: view.querySelector(".path").textContent });
        link.addEventListener("click", function () { view.open = true; });
        nav.appendChild(link);
        section.appendChild(view);
      });
    });
  }

  // The key field sits in a form only so that browsers treat it as a
  // password; it is never submitted.
  document.getElementById("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
  });

  fetch(new URL("openapi.json", base))
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(function (document_) { doc = document_; render(); })
    .catch(function (error) {
      document.getElementById("operations").replaceChildren(
        el("p", { text: "Could not load openapi.json: " + error.message }));
    });
})();
