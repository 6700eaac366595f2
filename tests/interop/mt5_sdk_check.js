// Drives the npm package mt5-sdk (a third-party MT5 Web API client, used unchanged) against a
// server, and prints what each call returned as one JSON object.
//
// usage: node mt5_sdk_check.js HOST PORT MANAGER PASSWORD LOGIN NEW_LOGIN
//
// mt5-sdk logs in again before every call and never rejects: a refused command (or login)
// resolves to null. A failed auth/start would leave the promise pending, hence the timeouts.
"use strict";

const crypto = require("crypto");
const Metatrader5 = require("mt5-sdk");

const [host, port, manager, password, login, newLogin] = process.argv.slice(2);

function connect(managerPassword) {
  return new Metatrader5(host, Number(port), {
    login: manager,
    password: managerPassword,
    build: "4000",
    agent: "mt5-sdk-interop",
  });
}

function settle(promise, ms = 5000) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The SDK's own login steps, to see its verdict on the server's cli_rand_answer (its auth()
// calls on whatever that verdict is).
function mutualCheck(mt5) {
  return new Promise((resolve) => {
    const start = `/api/auth/start?version=4000&agent=interop&login=${manager}&type=manager`;
    mt5.http.get(start, (error, res, body) => {
      const started = mt5.http.parseBodyJSON(error, res, body);
      if (!started) return resolve(false);
      const cliRand = crypto.randomBytes(16);
      const srvRandAnswer = mt5.auth.processAuth(started, password);
      const answer = `/api/auth/answer?srv_rand_answer=${srvRandAnswer}&cli_rand=${cliRand.toString("hex")}`;
      mt5.http.get(answer, (error2, res2, body2) => {
        const answered = mt5.http.parseBodyJSON(error2, res2, body2);
        resolve(Boolean(answered) && mt5.auth.processAuthFinal(answered, password, cliRand));
      });
    });
  });
}

async function main() {
  const mt5 = connect(password);
  const out = {};
  out.mutualCheck = await settle(mutualCheck(mt5));
  out.user = await settle(mt5.users.get(login));
  // POST with a JSON body (sent as application/x-www-form-urlencoded by the SDK).
  out.deposit = await settle(
    mt5.trade.updateTradeBalance({ login: Number(login), type: 2, balance: 150.5, comment: "sdk deposit" }),
  );
  // GET with query parameters (the SDK does not encode them: no spaces here).
  out.withdrawal = await settle(
    mt5.trade.updateTradeBalanceGet({ login, type: 2, balance: -50, comment: "sdk-withdrawal" }),
  );
  out.tooMuch = await settle(
    mt5.trade.updateTradeBalanceGet({ login, type: 2, balance: -100000, comment: "sdk-too-much" }),
  );
  out.batch = await settle(mt5.users.getBatch("real\\retail\\*"));
  out.passwordOk = await settle(mt5.users.checkPassword(login, "Trader!2026a"));
  out.passwordBad = await settle(mt5.users.checkPassword(login, "Wrong!2026a"));
  out.created = await settle(
    mt5.users.create({
      Login: Number(newLogin),
      Group: "real\\retail\\std",
      Leverage: 100,
      Name: "Grace Hopper",
      Email: "grace@example.com",
      PassMain: "Cobol!1959ab",
      PassInvestor: "Invest!1959cd",
    }),
  );
  out.updated = await settle(mt5.users.updateUser({ Login: Number(newLogin), Leverage: 50 }));
  out.badManager = await settle(connect("Wrong!Pass2026").users.get(login));
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
    process.exit(1);
  },
);
