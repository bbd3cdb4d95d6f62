// Calls through tailmeter with the JavaScript SDKs self-hosted apps are built on (LibreChat,
// Karakeep and n8n use `openai` and `@anthropic-ai/sdk`; Next.js apps the AI SDK), one call at
// a time, and prints one JSON line per call: its name and the usage the SDK handed the app, as
// the five figures tailmeter counts (null where the SDK saw none).
//
//   node sdk_calls.mjs GATEWAY_URL NPM_PREFIX
//
// The SDKs are loaded from NPM_PREFIX (where .ci/run installs them), not from the repository.
import { createRequire } from "node:module";

const [gateway, prefix] = process.argv.slice(2);
const require = createRequire(`${prefix}/`);
const OpenAI = require("openai").default;
const Anthropic = require("@anthropic-ai/sdk").default;
const { GoogleGenAI } = require("@google/genai");
const { generateText, streamText, generateObject, embed, jsonSchema } = require("ai");
const { createOpenAI } = require("@ai-sdk/openai");
const { createAnthropic } = require("@ai-sdk/anthropic");
const { createGoogleGenerativeAI } = require("@ai-sdk/google");

const KEY = "sk-client-node-sdk-e2e"; // dropped by the gateway, never seen by a provider
const ask = "Name three rivers in Portugal.";
const messages = [{ role: "user", content: ask }];

const figures = (input, output, cacheRead = 0, cacheWrite = 0, reasoning = 0) =>
  ({ input, output, cache_read: cacheRead ?? 0, cache_write: cacheWrite ?? 0, reasoning: reasoning ?? 0 });
const openaiChat = (u) => u && figures(u.prompt_tokens, u.completion_tokens ?? 0,
  u.prompt_tokens_details?.cached_tokens, 0, u.completion_tokens_details?.reasoning_tokens);
const openaiResponses = (u) => u && figures(u.input_tokens, u.output_tokens,
  u.input_tokens_details?.cached_tokens, 0, u.output_tokens_details?.reasoning_tokens);
const anthropic = (u) => u && figures(
  u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
  u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens);
const gemini = (u) => u && figures(u.promptTokenCount, (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0),
  u.cachedContentTokenCount, 0, u.thoughtsTokenCount);
const aiSdk = (u) => u && figures(u.inputTokens, u.outputTokens, u.inputTokenDetails?.cacheReadTokens,
  u.inputTokenDetails?.cacheWriteTokens, u.outputTokenDetails?.reasoningTokens);

const calls = [];
const call = (name, run) => calls.push([name, run]);

const oa = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: KEY, maxRetries: 0 });
call("openai chat", async () => openaiChat((await oa.chat.completions.create({ model: "gpt-4o", messages })).usage));
call("openai chat stream, no usage asked", async () => {
  let usage = null;
  for await (const chunk of await oa.chat.completions.create({ model: "gpt-4o", messages, stream: true })) {
    usage = chunk.usage ?? usage;
  }
  return usage;
});
call("openai responses stream", async () => {
  let usage = null;
  for await (const event of await oa.responses.create({ model: "gpt-5-nano", input: ask, stream: true })) {
    if (event.type === "response.completed") usage = openaiResponses(event.response.usage);
  }
  return usage;
});
call("openai embeddings", async () =>
  openaiChat((await oa.embeddings.create({ model: "text-embedding-3-small", input: ask })).usage));

const an = new Anthropic({ baseURL: gateway, apiKey: KEY, maxRetries: 0 });
call("anthropic messages", async () =>
  anthropic((await an.messages.create({ model: "claude-haiku-4-5", max_tokens: 256, messages })).usage));
call("anthropic messages stream", async () =>
  anthropic((await an.messages.stream({ model: "claude-haiku-4-5", max_tokens: 256, messages }).finalMessage()).usage));

const genai = new GoogleGenAI({ apiKey: KEY, httpOptions: { baseUrl: gateway } });
call("google-genai generateContent", async () =>
  gemini((await genai.models.generateContent({ model: "gemini-2.5-flash", contents: ask })).usageMetadata));
call("google-genai generateContentStream", async () => {
  let usage = null;
  for await (const chunk of await genai.models.generateContentStream({ model: "gemini-2.5-flash", contents: ask })) {
    usage = chunk.usageMetadata ?? usage;
  }
  return gemini(usage);
});

const sdk = {
  openai: createOpenAI({ baseURL: `${gateway}/v1`, apiKey: KEY }),
  anthropic: createAnthropic({ baseURL: `${gateway}/v1`, apiKey: KEY }),
  google: createGoogleGenerativeAI({ baseURL: `${gateway}/v1beta`, apiKey: KEY }),
};
const models = [
  ["ai-sdk openai (responses)", sdk.openai("gpt-4o")],
  ["ai-sdk openai.chat", sdk.openai.chat("gpt-4o")],
  ["ai-sdk anthropic", sdk.anthropic("claude-haiku-4-5")],
  ["ai-sdk google", sdk.google("gemini-2.5-flash")],
];
for (const [name, model] of models) {
  call(`${name} generateText`, async () => aiSdk((await generateText({ model, prompt: ask, maxRetries: 0 })).usage));
  call(`${name} streamText`, async () => {
    let failure = null;
    const result = streamText({ model, prompt: ask, maxRetries: 0, onError: ({ error }) => { failure = error; } });
    for await (const _ of result.textStream) { /* read it all, as a chat UI does */ }
    if (failure) throw failure;
    return aiSdk(await result.usage);
  });
}
// Structured output, as apps extract data: each provider's own way of asking for JSON.
const rivers = jsonSchema({
  type: "object",
  properties: { rivers: { type: "array", items: { type: "string" } } },
  required: ["rivers"],
  additionalProperties: false,
});
for (const [name, model] of models) {
  call(`${name} generateObject`, async () => {
    const { object, usage } = await generateObject({ model, schema: rivers, prompt: ask, maxRetries: 0 });
    if (!Array.isArray(object.rivers)) throw new Error(`not the schema's shape: ${JSON.stringify(object)}`);
    return aiSdk(usage);
  });
}
call("ai-sdk embed", async () => {
  const { usage } = await embed({ model: sdk.openai.embedding("text-embedding-3-small"), value: ask, maxRetries: 0 });
  return figures(usage.tokens, 0);
});

for (const [name, run] of calls) {
  try {
    console.log(JSON.stringify({ name, usage: await run() }));
  } catch (error) {
    console.log(JSON.stringify({ name, error: `${error.status ?? ""} ${error.message}`.trim() }));
  }
}
