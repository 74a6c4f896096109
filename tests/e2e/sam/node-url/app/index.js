const greet = require("greet");

exports.handler = async (event) => ({
  statusCode: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ message: greet(event.rawPath), path: event.rawPath }),
});
