// Reads JSON-string lines on stdin, prints each line's ids (HF tokenizers) as a JSON array.
const { Tokenizer } = require("tokenizers");
const readline = require("readline");
const tok = Tokenizer.fromFile(process.argv[2]);
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const lines = [];
rl.on("line", l => lines.push(l));
rl.on("close", async () => {
  for (const l of lines) {
    const text = JSON.parse(l);
    const e = await tok.encode(text, null, { addSpecialTokens: false });
    process.stdout.write(JSON.stringify(e.getIds()) + "\n");
  }
});
