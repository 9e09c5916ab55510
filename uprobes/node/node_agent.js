// hoptrace's JavaScript agent for Node.js (issue 11), evaluated in the
// process through its inspector (node_inspector.cc), only in processes the
// user opted in (--node-inject). It changes no behaviour and writes nothing:
// it follows the incoming socket of each HTTP request with
// AsyncLocalStorage and, before an outgoing request is written on a socket,
// announces to the kernel "socket out_fd serves the request of socket in_fd"
// with a one-byte pread of /dev/null whose position carries the fds
// (bpf/runtime_node.h). The expression evaluates to JSON: {"fd": N}.
//
// Installed off; start() turns it on once the kernel knows the fd;
// uninstall() removes every hook and closes the fd.
(function () {
  'use strict';
  const KEY = Symbol.for('hoptrace.node.v1');
  if (globalThis[KEY]) return JSON.stringify({ fd: globalThis[KEY].fd, again: true });
  const req = typeof require === 'function' ? require
    : process.mainModule.require.bind(process.mainModule);
  const { AsyncLocalStorage } = req('async_hooks');
  const dc = req('diagnostics_channel');
  const fs = req('fs');
  const http = req('http');
  const MAGIC = 0x1ace * 2 ** 40, SHIFT = 2 ** 20, NONE = 0xfffff;
  const als = new AsyncLocalStorage();
  const buf = Buffer.alloc(1);
  const kIn = Symbol('hoptrace.in');
  const state = { fd: fs.openSync('/dev/null', 'r'), on: false, announces: 0 };

  function fdOf(sock) {
    const h = sock && sock._handle;
    const f = h && h.fd;
    return typeof f === 'number' ? f : -1;
  }
  function announce(out, inFd) {
    if (!state.on || !(out >= 0 && out < NONE)) return;
    if (!(inFd >= 0 && inFd < NONE)) inFd = NONE;
    try {
      fs.readSync(state.fd, buf, 0, 1, MAGIC + out * SHIFT + inFd);
      state.announces++;
    } catch (e) { /* never the application's problem */ }
  }
  // Before the socket's next write: now if it is connected, else at
  // 'connect' (registered before the request queues its first write there).
  function bind(sock, inFd) {
    if (!sock || !state.on) return;
    const f = fdOf(sock);
    if (f >= 0 && !sock.connecting) announce(f, inFd);
    else sock.once('connect', () => announce(fdOf(sock), inFd));
  }

  // Incoming: the request's socket becomes the context of everything its
  // handler does from here on.
  const onServer = (m) => { if (state.on) als.enterWith(fdOf(m.socket)); };
  // http.Agent: the request's context is taken when it is queued (the
  // socket may be handed over later, from another request's context).
  const Agent = http.Agent, CR = http.ClientRequest;
  const origAdd = Agent.prototype.addRequest, origOnSocket = CR.prototype.onSocket;
  const add = function (request, ...rest) {
    if (state.on && request && !(kIn in request)) request[kIn] = als.getStore();
    return origAdd.call(this, request, ...rest);
  };
  const onSocket = function (socket, err) {
    if (state.on && socket && !err) bind(socket, kIn in this ? this[kIn] : als.getStore());
    return origOnSocket.call(this, socket, err);
  };
  // fetch (undici): context at request creation, socket at sendHeaders
  // (published before the head is written).
  const undiciIn = new WeakMap();
  const onCreate = (m) => { if (state.on) undiciIn.set(m.request, als.getStore()); };
  const onHeaders = (m) => { if (state.on) bind(m.socket, undiciIn.get(m.request)); };

  const subs = [['http.server.request.start', onServer], ['undici:request:create', onCreate],
                ['undici:client:sendHeaders', onHeaders]];
  for (const [name, fn] of subs) dc.subscribe(name, fn);
  Agent.prototype.addRequest = add;
  CR.prototype.onSocket = onSocket;

  state.start = () => { state.on = true; return true; };
  state.uninstall = () => {
    state.on = false;
    for (const [name, fn] of subs) dc.unsubscribe(name, fn);
    if (Agent.prototype.addRequest === add) Agent.prototype.addRequest = origAdd;
    if (CR.prototype.onSocket === onSocket) CR.prototype.onSocket = origOnSocket;
    als.disable();
    try { fs.closeSync(state.fd); } catch (e) { /* already */ }
    delete globalThis[KEY];
    return true;
  };
  Object.defineProperty(globalThis, KEY, { value: state, configurable: true, enumerable: false });
  return JSON.stringify({ fd: state.fd });
})()
