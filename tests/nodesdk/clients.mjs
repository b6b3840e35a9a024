// The Node clients of the Node SDK suite (tests/nodesdk/test_node_sdks.py),
// one scenario a run: `node clients.mjs <scenario> <backend> <model>`, with
// the server's address in CLINVK_URL.  Each scenario prints one JSON object
// of what the client got, for the test to check.
import Anthropic from "@anthropic-ai/sdk";
import { createOpenAI } from "@ai-sdk/openai";
import { Output, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";

const [scenario, backend, model] = process.argv.slice(2);
const base = process.env.CLINVK_URL;
const openai = new OpenAI({ baseURL: `${base}/openai/v1`, apiKey: "sk-clinvk-test", maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: `${base}/anthropic`, apiKey: "sk-ant-clinvk-test", maxRetries: 0 });
// The AI SDK's default OpenAI provider: provider(model) speaks the Responses API.
const provider = createOpenAI({ baseURL: `${base}/openai/v1`, apiKey: "sk-clinvk-test" });
const QUESTIONS = ["Pick a number", "Double it", "Now add ten"];
const FORECAST = "sunny, 21 C";
// A strict schema (codex holds every schema to OpenAI's strict rules).
const PICK = {
  type: "object",
  properties: { label: { type: "string" }, n: { type: "integer" } },
  required: ["label", "n"],
  additionalProperties: false,
};
// A one-pixel red PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

// The error's status and param, where the request was refused.
async function refused(request) {
  try {
    await request;
  } catch (error) {
    return { status: error.status, param: error.param ?? error.error?.param ?? null };
  }
  return null;
}
const SESSION = "x-clinvk-session-id";

const scenarios = {
  async chat() {
    const completion = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: `Say hello to ${backend}` }],
    });
    const stream = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: `#fake chunks=3\nCount for ${backend}` }],
      stream: true,
    });
    const pieces = [];
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) pieces.push(piece);
    }
    return {
      text: completion.choices[0].message.content,
      finish: completion.choices[0].finish_reason,
      pieces,
    };
  },

  async chatConversation() {
    const messages = [];
    const answers = [];
    const sessions = new Set();
    for (const question of QUESTIONS) {
      messages.push({ role: "user", content: question });
      const { data, response } = await openai.chat.completions.create({ model, messages }).withResponse();
      sessions.add(response.headers.get(SESSION));
      answers.push(data.choices[0].message.content);
      messages.push({ role: "assistant", content: data.choices[0].message.content });
    }
    return { answers, sessions: [...sessions] };
  },

  async responses() {
    const answers = [];
    const sessions = new Set();
    let previous;
    for (const question of QUESTIONS) {
      const { data, response } = await openai.responses
        .create({ model, input: question, previous_response_id: previous })
        .withResponse();
      sessions.add(response.headers.get(SESSION));
      answers.push(data.output_text);
      previous = data.id;
    }
    const kinds = [];
    const stream = await openai.responses.create({ model, input: `#fake chunks=2\nStream for ${backend}`, stream: true });
    for await (const event of stream) kinds.push(event.type);
    const stored = await openai.responses.retrieve(previous);
    await openai.responses.delete(previous);
    let deleted = false;
    try {
      await openai.responses.retrieve(previous);
    } catch (error) {
      deleted = error instanceof OpenAI.NotFoundError;
    }
    return { answers, sessions: [...sessions], kinds, stored: stored.output_text, deleted };
  },

  async anthropicConversation() {
    const messages = [];
    const answers = [];
    const sessions = new Set();
    for (const question of QUESTIONS) {
      messages.push({ role: "user", content: question });
      const { data, response } = await anthropic.messages
        .create({ model: backend, max_tokens: 100, messages })
        .withResponse();
      sessions.add(response.headers.get(SESSION));
      answers.push(data.content[0].text);
      messages.push({ role: "assistant", content: data.content });
    }
    return { answers, sessions: [...sessions] };
  },

  async aiSdk() {
    const generated = await generateText({ model: provider(model), prompt: `Say hello to ${backend}` });
    const streamed = streamText({ model: provider(model), prompt: `#fake chunks=3\nCount for ${backend}` });
    const pieces = [];
    for await (const piece of streamed.textStream) pieces.push(piece);
    return { text: generated.text, finish: generated.finishReason, pieces };
  },

  async structured() {
    const completion = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: `Pick one for ${backend}` }],
      response_format: { type: "json_schema", json_schema: { name: "pick", schema: PICK, strict: true } },
    });
    const generated = await generateText({
      model: provider(model),
      prompt: `Generate one for ${backend}`,
      output: Output.object({ schema: jsonSchema(PICK) }),
    });
    return { chat: JSON.parse(completion.choices[0].message.content), aiSdk: generated.output };
  },

  async structuredRefused() {
    return refused(
      openai.chat.completions.create({
        model,
        messages: [{ role: "user", content: "x" }],
        response_format: { type: "json_schema", json_schema: { name: "pick", schema: PICK } },
      }),
    );
  },

  async images() {
    const chat = await openai.chat.completions.create({
      model,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: `Chat colour for ${backend}` },
            { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
          ],
        },
      ],
    });
    const message = await anthropic.messages.create({
      model: backend,
      max_tokens: 100,
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
            { type: "text", text: `Messages colour for ${backend}` },
          ],
        },
      ],
    });
    const generated = await generateText({
      model: provider(model),
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: `AI SDK colour for ${backend}` },
            { type: "image", image: Buffer.from(PNG, "base64"), mediaType: "image/png" },
          ],
        },
      ],
    });
    return { chat: chat.choices[0].message.content, messages: message.content[0].text, aiSdk: generated.text };
  },

  // A weather tool round trip: the CLI calls the client's tool, the client
  // runs it and sends the result back (docs/design/client-tools.md).
  async tools() {
    const prompt = (client) => `What is the weather in Paris (${client} on ${backend})? Use get_weather.`;
    const parameters = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
    const messages = [{ role: "user", content: prompt("openai") }];
    const tools = [{ type: "function", function: { name: "get_weather", description: "The weather.", parameters } }];
    const first = await openai.chat.completions.create({ model, messages, tools });
    const call = first.choices[0].message.tool_calls[0];
    messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: FORECAST });
    const chat = await openai.chat.completions.create({ model, messages, tools });

    const anthropicMessages = [{ role: "user", content: prompt("anthropic") }];
    const anthropicTools = [{ name: "get_weather", description: "The weather.", input_schema: parameters }];
    const asked = await anthropic.messages.create({
      model: backend,
      max_tokens: 100,
      messages: anthropicMessages,
      tools: anthropicTools,
    });
    const use = asked.content.find((block) => block.type === "tool_use");
    anthropicMessages.push(
      { role: "assistant", content: asked.content },
      { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: FORECAST }] },
    );
    const answered = await anthropic.messages.create({
      model: backend,
      max_tokens: 100,
      messages: anthropicMessages,
      tools: anthropicTools,
    });

    const executed = [];
    const generated = await generateText({
      model: provider(model),
      prompt: prompt("ai-sdk"),
      tools: {
        get_weather: tool({
          description: "The weather.",
          inputSchema: jsonSchema(parameters),
          execute: async (input) => {
            executed.push(input);
            return FORECAST;
          },
        }),
      },
      stopWhen: stepCountIs(3),
    });
    return {
      chat: { finish: first.choices[0].finish_reason, name: call.function.name, text: chat.choices[0].message.content },
      anthropic: { stop: asked.stop_reason, input: use.input, text: answered.content[0].text },
      aiSdk: { steps: generated.steps.length, executed, text: generated.text },
    };
  },

  async aiSdkConversation() {
    const messages = [];
    const answers = [];
    const sessions = new Set();
    for (const question of QUESTIONS) {
      messages.push({ role: "user", content: question });
      const result = await generateText({ model: provider(model), messages });
      sessions.add(result.response.headers?.[SESSION]);
      answers.push(result.text);
      messages.push(...result.response.messages);
    }
    return { answers, sessions: [...sessions] };
  },
};

try {
  console.log(JSON.stringify(await scenarios[scenario]()));
} catch (error) {
  console.error(error);
  process.exit(1);
}
