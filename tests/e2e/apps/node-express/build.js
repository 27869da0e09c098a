// The build script: runs at build time with dev dependencies installed.
const fs = require("fs");
const isNumber = require("is-number");
fs.mkdirSync("public", { recursive: true });
fs.writeFileSync("public/built.txt", `built with is-number: ${isNumber(42)}\n`);
