const express = require("express");
const fs = require("fs");
const app = express();

// Not require.resolve: Debian's Node.js also searches /usr/share/nodejs, where npm's own
// dependencies live.
function present(name) {
  return fs.existsSync(`node_modules/${name}`);
}

app.get("/", (req, res) => {
  res.type("text/plain").send(`express on node ${process.version} as ${process.env.DYNO}\n`);
});
app.get("/info", (req, res) => {
  res.json({
    nodeEnv: process.env.NODE_ENV,
    uid: process.getuid(),
    devDependencyPresent: present("is-number"),
    built: fs.readFileSync("public/built.txt", "utf8"),
  });
});
app.listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
