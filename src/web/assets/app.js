// trueconf2mqtt web UI: one WebSocket to `api` (the same topics and payloads as MQTT, relative
// to mqtt.base_topic), no framework, no build step. Everything a Room sends (names, titles,
// device names) is untrusted: it only ever reaches the page through textContent, attributes
// set with setAttribute, or form values; never parsed as markup.
'use strict';

(() => {
  const token = new URLSearchParams(location.search).get('token');
  const LOG_LIMIT = 300;
  const SHOWN_PAYLOAD = 600;
  // Settable fields laid out by hand: the dial/call row and the PTZ pad.
  const HAND_LAID = new Set(['call', 'ptz']);

  const rooms = new Map();
  const bridge = { state: '', info: null, ready: null, metrics: null };
  let schema = { fields: [], methods: [], byField: new Map(), byMethod: new Map() };
  // `bridge`, or `bridge/<instance>` when the bridge runs with mqtt.instance.
  let bridgePrefix = 'bridge';
  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let transaction = 0;
  const waiting = new Map();

  // ---------- small DOM helpers ----------

  const $ = (selector, root = document) => root.querySelector(selector);

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function parseJson(payload) {
    if (typeof payload !== 'string') return payload;
    try {
      return JSON.parse(payload);
    } catch {
      return payload;
    }
  }

  function shown(value) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return text.length > SHOWN_PAYLOAD ? text.slice(0, SHOWN_PAYLOAD) + '…' : text;
  }

  function humanize(name) {
    const words = name.replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function withToken(path) {
    const url = new URL(path, location.href);
    if (token) url.searchParams.set('token', token);
    return url;
  }

  // ---------- the field table and the catalog ----------

  // Accepts the bridge's description ({fields: [...], methods: [...]}) and keeps what the UI
  // needs; unknown members are ignored, missing ones get safe defaults.
  function applySchema(raw) {
    if (!raw || typeof raw !== 'object') return;
    const fields = Array.isArray(raw.fields) ? raw.fields : [];
    const methods = Array.isArray(raw.methods) ? raw.methods : [];
    bridgePrefix = typeof raw.instance === 'string' && raw.instance ? `bridge/${raw.instance}` : 'bridge';
    if (Array.isArray(raw.rooms)) {
      for (const about of raw.rooms) {
        if (!about || typeof about.id !== 'string') continue;
        const room = roomFor(about.id);
        if (typeof about.name === 'string') room.name = about.name;
      }
    }
    schema = {
      fields: fields.filter((f) => f && typeof f.name === 'string').map(normalizeField),
      methods: methods.filter((m) => m && typeof m.name === 'string'),
      byField: new Map(),
      byMethod: new Map(),
    };
    for (const field of schema.fields) schema.byField.set(field.name, field);
    for (const method of schema.methods) schema.byMethod.set(method.name, method);
    fillMethodList();
    for (const room of rooms.values()) rebuildPanel(room);
  }

  // A field of /api/schema: `set.type` says how it is set; `set.options` are fixed choices
  // (shown as buttons), `set.options_from` names the state member listing them (a select).
  function normalizeField(f) {
    const setter = f.set && typeof f.set === 'object' ? f.set : {};
    const type = String(setter.type || '');
    const options = Array.isArray(setter.options) ? setter.options.map(String) : null;
    return {
      name: f.name,
      kind: String(f.kind || 'text').toLowerCase(),
      label: humanize(f.name),
      about: f.about || f.grammar || '',
      settable: Boolean(f.settable),
      type,
      list: typeof setter.options_from === 'string' ? setter.options_from : null,
      // With a list to choose from, fixed options (`stop`, `new`) join the select instead.
      choices: options && !setter.options_from && !['switch', 'device'].includes(type) ? options : null,
      extra: options && setter.options_from ? options : [],
      freeText: Boolean(setter.free_text),
    };
  }

  // The field a device select takes its options from: the description's, else `<name>s`.
  function listFor(field, doc) {
    if (field.list) return field.list;
    const guess = field.name + 's';
    const listed = schema.byField.get(guess);
    return (listed && listed.kind === 'list') || Array.isArray(doc[guess]) ? guess : null;
  }

  // ---------- the WebSocket ----------

  function setConnection(state, text) {
    const badge = $('#connection');
    badge.dataset.state = state;
    badge.textContent = text;
    document.body.dataset.connection = state;
  }

  function connect() {
    clearTimeout(retryTimer);
    const url = withToken('api');
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    setConnection('connecting', 'connecting…');
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      scheduleReconnect(String(error));
      return;
    }
    socket = ws;
    ws.addEventListener('open', () => {
      attempt = 0;
      setConnection('open', 'connected');
      if (!schema.fields.length) loadSchema();
    });
    ws.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        logLine('', 'bad message', shown(event.data), 'error');
        return;
      }
      if (message && typeof message.topic === 'string') handle(message.topic, message.payload);
      else if (message && (message.fields || message.methods)) applySchema(message);
    });
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      // Answers to what was sent on this connection will not come any more.
      const orphans = [...waiting.values()].flat();
      waiting.clear();
      for (const callback of orphans) callback({ status: 'error', error: 'connection to the bridge lost' });
      for (const room of rooms.values()) {
        room.availability = 'unknown';
        renderRoom(room);
      }
      scheduleReconnect(event.code === 1009 ? 'message too big' : 'closed');
      // A refused token shows as a plain close here; /api/schema says 401 then.
      loadSchema();
    });
  }

  function scheduleReconnect(why) {
    // Exponential backoff with jitter, 0.5 s doubling to 30 s.
    const base = Math.min(30000, 500 * 2 ** attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    attempt += 1;
    setConnection('closed', `disconnected (${why}), retrying in ${Math.ceil(delay / 1000)} s`);
    retryTimer = setTimeout(connect, delay);
  }

  function send(topic, payload, onAnswer) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      if (onAnswer) onAnswer({ status: 'error', error: 'not connected to the bridge' });
      return false;
    }
    if (onAnswer) {
      const answerTopic = topic.replace(/\/(set|request)(\/|$)/, '/response$2').replace(/\/response$/, '/response/set');
      const list = waiting.get(answerTopic) || [];
      list.push(onAnswer);
      waiting.set(answerTopic, list);
    }
    socket.send(JSON.stringify({ topic, payload }));
    return true;
  }

  // ---------- incoming messages ----------

  function handle(topic, payload) {
    if (topic === bridgePrefix || topic.startsWith(bridgePrefix + '/')) {
      handleBridge(topic.slice(bridgePrefix.length + 1).split('/'), topic, payload);
      return;
    }
    const parts = topic.split('/');
    if (parts[0] === 'bridge') return; // another instance's
    const room = roomFor(parts[0]);
    if (parts.length === 1) {
      const doc = parseJson(payload);
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) {
        room.doc = doc;
        renderRoom(room);
      } else if (payload === '' || payload === null) {
        room.doc = {};
        renderRoom(room);
      }
      return;
    }
    const what = parts[1];
    if (what === 'availability') {
      room.availability = String(payload);
      renderRoom(room);
    } else if (what === 'event') {
      logLine(room.id, parts.slice(2).join('/'), shown(payload), 'event');
    } else if (what === 'response') {
      answer(topic, parseJson(payload));
    } else if (what === 'owner' || what === 'set' || what === 'request') {
      // Claims of bridge instances; echoes of commands.
    } else if (parts.length === 2) {
      setPlain(room, what, payload);
    }
  }

  // `parts`: the topic after the bridge prefix (`state`, `info`, `response/<name>`).
  function handleBridge(parts, topic, payload) {
    if (parts[0] === 'state') {
      bridge.state = String(payload);
      renderBridge();
    } else if (parts[0] === 'info') {
      const info = parseJson(payload);
      bridge.info = info && typeof info === 'object' ? info : null;
      if (bridge.info && bridge.info.rooms && typeof bridge.info.rooms === 'object') {
        for (const [id, about] of Object.entries(bridge.info.rooms)) {
          const room = roomFor(id);
          if (about && typeof about.name === 'string') room.name = about.name;
          room.link = about && typeof about.state === 'string' ? about.state : '';
          renderRoom(room);
        }
      }
      renderBridge();
    } else if (parts[0] === 'response') {
      answer(topic, parseJson(payload));
    }
  }

  // A plain topic changed: keep the JSON document in step so the panel shows it at once.
  function setPlain(room, name, payload) {
    const field = schema.byField.get(name);
    const old = room.doc[name];
    let value = payload;
    if ((field && field.kind === 'switch') || typeof old === 'boolean') value = payload === 'ON' || payload === true;
    else if ((field && field.kind === 'integer') || typeof old === 'number') {
      const number = Number(payload);
      value = payload === '' || Number.isNaN(number) ? null : number;
    }
    if (old === value) return;
    room.doc[name] = value;
    renderRoom(room);
    if ($('#log-state').checked) logLine(room.id, name, shown(payload), 'state');
  }

  function answer(topic, body) {
    const list = waiting.get(topic);
    const ok = body && body.status === 'ok';
    logLine(topic.split('/')[0], topic.split('/').slice(1).join('/'), shown(body), ok ? 'response' : 'error');
    if (list && list.length) {
      const callback = list.shift();
      if (!list.length) waiting.delete(topic);
      callback(body);
    }
  }

  // ---------- rooms ----------

  function roomFor(id) {
    let room = rooms.get(id);
    if (!room) {
      room = { id, name: id, doc: {}, availability: '', link: '', row: null, panel: null };
      rooms.set(id, room);
      createRoom(room);
    }
    return room;
  }

  function createRoom(room) {
    $('#no-rooms').hidden = true;
    room.row = el('tr', { 'data-room': room.id });
    $('#overview tbody').append(room.row);
    const template = $('#panel-template').content.firstElementChild.cloneNode(true);
    template.dataset.room = room.id;
    template.id = 'room-' + room.id.replace(/[^A-Za-z0-9_-]/g, '_');
    room.panel = template;
    wirePanel(room);
    $('#panels').append(template);
    rebuildPanel(room);
    const option = el('option', { value: room.id, text: room.id });
    $('#request-room').append(option);
  }

  function feedback(room, text, isError) {
    const line = $('.feedback', room.panel);
    line.textContent = text;
    line.classList.toggle('error', Boolean(isError));
  }

  // Sends `<room>/set/<field>` and shows the answer in the panel.
  function setField(room, field, value) {
    feedback(room, `${field} ← ${value}…`);
    send(`${room.id}/set/${field}`, value, (reply) => {
      if (reply && reply.status === 'ok') feedback(room, `${field}: ok`);
      else feedback(room, `${field}: ${reply && reply.error ? reply.error : 'failed'}`, true);
    });
  }

  // The hand-laid controls: dial box, call buttons, PTZ pad.
  function wirePanel(room) {
    const panel = room.panel;
    const number = $('.dial-number', panel);
    for (const node of [number, $('.dial-button', panel)]) {
      node.dataset.room = room.id;
      node.dataset.field = 'call';
    }
    $('.dial', panel).addEventListener('submit', (event) => {
      event.preventDefault();
      const peer = number.value.trim();
      if (!peer) {
        feedback(room, 'enter a TrueConf ID to call', true);
        return;
      }
      setField(room, 'call', peer);
    });
    for (const button of panel.querySelectorAll('.call-buttons button')) {
      button.dataset.room = room.id;
      button.dataset.field = 'call';
      button.addEventListener('click', () => setField(room, 'call', button.dataset.value));
    }
    for (const button of panel.querySelectorAll('.ptz button')) {
      button.dataset.room = room.id;
      button.dataset.field = 'ptz';
      button.addEventListener('click', () => setField(room, 'ptz', button.dataset.value));
    }
  }

  // The generated controls: one per settable field of the field table.
  function rebuildPanel(room) {
    const panel = room.panel;
    const toggles = $('.toggles', panel);
    const selects = $('.selects', panel);
    const actions = $('.actions', panel);
    const texts = $('.texts', panel);
    toggles.replaceChildren();
    selects.replaceChildren();
    actions.replaceChildren();
    texts.replaceChildren();
    for (const field of schema.fields) {
      if (!field.settable || HAND_LAID.has(field.name)) continue;
      const common = { 'data-room': room.id, 'data-field': field.name, title: field.about };
      if (field.kind === 'switch') {
        const button = el('button', { ...common, type: 'button', class: 'toggle', 'aria-pressed': 'false' },
          el('span', { class: 'label', text: field.label }), el('span', { class: 'value', text: '' }));
        button.addEventListener('click', () => {
          const on = button.getAttribute('aria-pressed') === 'true';
          setField(room, field.name, on ? 'OFF' : 'ON');
        });
        toggles.append(button);
      } else if (field.choices && field.choices.length) {
        const group = el('div', { class: 'row choices', role: 'group', 'aria-label': field.label },
          el('span', { class: 'muted', text: field.label }));
        for (const choice of field.choices) {
          group.append(el('button', { ...common, type: 'button', 'data-value': choice, text: humanize(choice),
            onclick: () => setField(room, field.name, choice) }));
        }
        actions.append(group);
      } else if (listFor(field, room.doc)) {
        const select = el('select', { ...common, 'aria-label': field.label });
        select.addEventListener('change', () => setField(room, field.name, select.value));
        selects.append(el('label', {}, el('span', { text: field.label }), select));
      } else {
        const input = el('input', { ...common, type: field.kind === 'integer' ? 'number' : 'text',
          'aria-label': field.label, placeholder: field.about });
        const form = el('form', { class: 'row' }, el('span', { class: 'muted', text: field.label }), input,
          el('button', { type: 'submit', 'data-room': room.id, 'data-field': field.name, text: 'Set' }));
        form.addEventListener('submit', (event) => {
          event.preventDefault();
          setField(room, field.name, input.value);
        });
        texts.append(form);
      }
    }
    renderRoom(room);
  }

  function onOff(value) {
    if (value === true) return 'ON';
    if (value === false) return 'OFF';
    return '–';
  }

  // One phrase for the call: idle, ringing, calling someone, or in a call (with its title).
  function callState(doc) {
    if (doc.ringing) return 'ringing';
    if (doc.in_call) return doc.conference_title ? `in call: ${doc.conference_title}` : 'in call';
    if (doc.callee) return `calling ${doc.callee}`;
    return doc.app_state === 'normal' ? 'idle' : (doc.app_state || '');
  }

  function renderRoom(room) {
    if (!room.panel) return;
    const doc = room.doc;
    const availability = room.availability || room.link || 'unknown';
    const online = availability === 'online';
    // Overview row.
    const participants = Array.isArray(doc.participants) ? doc.participants : [];
    const people = participants.map((p) => (p && (p.peer_dn || p.peer_id)) || '').filter(Boolean).join(', ');
    const caller = doc.caller_name || doc.caller ? `${doc.caller_name || ''} ${doc.caller ? `(${doc.caller})` : ''}`.trim() : '';
    const devices = ['camera', 'microphone', 'speaker'].map((d) => doc[d]).filter(Boolean).join(' · ');
    const cells = [
      el('td', {}, el('a', { href: '#' + room.panel.id, text: room.name })),
      el('td', {}, el('span', { class: 'badge', 'data-state': online ? 'open' : 'closed', text: availability })),
      el('td', { text: callState(doc) }),
      el('td', { text: caller }),
      el('td', { title: people, text: doc.participant_count ?? '' }),
      el('td', { text: onOff(doc.mic_muted) }),
      el('td', { text: onOff(doc.camera_muted) }),
      el('td', { text: onOff(doc.speaker_muted) }),
      el('td', { class: 'devices', text: devices }),
    ];
    room.row.replaceChildren(...cells);

    // Panel.
    const panel = room.panel;
    panel.classList.toggle('offline', !online);
    $('.room-name', panel).textContent = room.name === room.id ? room.id : `${room.name} (${room.id})`;
    const badge = $('.availability', panel);
    badge.textContent = availability;
    badge.dataset.state = online ? 'open' : 'closed';
    $('.app-state', panel).textContent = callState(doc);
    $('.people', panel).textContent = people ? `With ${people}` : '';
    const ringing = $('.ringing-banner', panel);
    ringing.hidden = !doc.ringing;
    $('.ringing-text', panel).textContent = doc.ringing ? `Incoming call from ${caller || 'unknown'}` : '';

    for (const node of panel.querySelectorAll('button.toggle[data-field]')) {
      const value = doc[node.dataset.field];
      node.setAttribute('aria-pressed', value === true ? 'true' : 'false');
      $('.value', node).textContent = onOff(value);
    }
    for (const select of panel.querySelectorAll('select[data-field]')) {
      const field = schema.byField.get(select.dataset.field);
      const listName = field && listFor(field, doc);
      // A list of names, or of objects with a `name` (presets, monitors).
      const nameOf = (item) => (item && typeof item === 'object' ? String(item.name ?? '') : String(item));
      const names = listName && Array.isArray(doc[listName]) ? doc[listName].map(nameOf) : [];
      const current = doc[select.dataset.field] ?? '';
      const wanted = [...names, ...((field && field.extra) || []).filter((o) => !names.includes(o))];
      if (current && !wanted.includes(current)) wanted.unshift(current);
      if (!current) wanted.unshift('');
      const have = [...select.options].map((o) => o.value);
      if (have.join('\n') !== wanted.join('\n')) {
        select.replaceChildren(...wanted.map((name) => el('option', { value: name, text: name || '(none)' })));
      }
      if (document.activeElement !== select) select.value = current;
    }
    for (const input of panel.querySelectorAll('.texts input[data-field]')) {
      if (document.activeElement !== input) input.value = doc[input.dataset.field] ?? '';
    }
    const calling = Boolean(doc.in_call || doc.callee);
    for (const button of panel.querySelectorAll('.call-buttons button')) {
      const value = button.dataset.value;
      button.disabled = !online || (value === 'hangup' ? !calling : !doc.ringing);
    }

    // Every member of the state document, read-only (new fields show here without UI changes).
    const rows = [];
    for (const [name, value] of Object.entries(doc)) {
      const field = schema.byField.get(name);
      rows.push(el('dt', { title: field ? field.about : '', text: name }),
        el('dd', { 'data-room': room.id, 'data-field': name, text: typeof value === 'string' ? value : shown(value) }));
    }
    $('.fields .kv', panel).replaceChildren(...rows);
  }

  // ---------- event log ----------

  function logLine(room, name, text, kind) {
    const log = $('#log');
    const time = new Date().toLocaleTimeString();
    const item = el('li', { class: kind, 'data-room': room || null },
      el('time', { text: time }), el('b', { text: room }), el('span', { class: 'name', text: name }),
      el('code', { text }));
    log.prepend(item);
    while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
  }

  // ---------- request console ----------

  function fillMethodList() {
    const list = $('#method-list');
    list.replaceChildren(...schema.methods.map((m) => el('option', { value: m.name, text: m.dangerous ? 'dangerous' : (m.category || '') })));
    renderParams();
  }

  function paramInput(param) {
    const type = String(param.type || 'any');
    const attributes = { name: param.name, 'data-type': type, 'aria-label': param.name };
    if (type === 'bool') {
      return el('select', attributes, el('option', { value: '', text: param.required ? 'choose' : '(leave out)' }),
        el('option', { value: 'true', text: 'true' }), el('option', { value: 'false', text: 'false' }));
    }
    if (type === 'int' || type === 'number') return el('input', { ...attributes, type: 'number', step: type === 'int' ? '1' : 'any' });
    if (type === 'string') return el('input', { ...attributes, type: 'text' });
    return el('textarea', { ...attributes, rows: 2, placeholder: `JSON ${type}` });
  }

  function renderParams() {
    const method = schema.byMethod.get($('#request-method').value.trim());
    const box = $('#request-params');
    const legend = el('legend', { text: 'Parameters' });
    const about = $('#method-about');
    if (!method) {
      box.replaceChildren(legend, el('p', { class: 'muted', text: schema.methods.length ? 'Pick a method.' : 'The method list has not arrived.' }));
      about.textContent = '';
      return;
    }
    about.textContent = `${method.dangerous ? '⚠ dangerous (refused unless allowed) · ' : ''}${method.note || ''}`;
    const params = Array.isArray(method.params) ? method.params : [];
    const rows = params.map((param) => el('label', { class: 'param', title: param.note || '' },
      el('span', {}, el('code', { text: param.name }), ` ${param.type || 'any'}${param.required ? ' *' : ''}`),
      paramInput(param),
      param.note ? el('small', { class: 'muted', text: param.note }) : null));
    box.replaceChildren(legend, ...(rows.length ? rows : [el('p', { class: 'muted', text: 'No parameters.' })]));
  }

  function readParams() {
    const result = {};
    for (const input of $('#request-params').querySelectorAll('[name]')) {
      const raw = input.value.trim();
      if (raw === '') continue;
      const type = input.dataset.type;
      if (type === 'bool') result[input.name] = raw === 'true';
      else if (type === 'int' || type === 'number') {
        const number = Number(raw);
        if (Number.isNaN(number)) throw new Error(`${input.name}: not a number`);
        result[input.name] = number;
      } else if (type === 'string') result[input.name] = raw;
      else {
        try {
          result[input.name] = JSON.parse(raw);
        } catch {
          throw new Error(`${input.name}: not JSON`);
        }
      }
    }
    return result;
  }

  function wireConsole() {
    $('#request-method').addEventListener('input', renderParams);
    $('#request-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const status = $('#request-status');
      const result = $('#request-result');
      const room = $('#request-room').value;
      const method = $('#request-method').value.trim();
      if (!room || !method) {
        status.textContent = 'choose a room and a method';
        return;
      }
      let params;
      try {
        params = readParams();
      } catch (error) {
        status.textContent = error.message;
        return;
      }
      transaction += 1;
      params.transaction = transaction;
      status.textContent = `sent ${method}…`;
      result.textContent = '';
      result.dataset.status = 'pending';
      send(`${room}/request/${method}`, params, (reply) => {
        const ok = reply && reply.status === 'ok';
        status.textContent = ok ? `${method}: ok` : `${method}: error`;
        result.dataset.status = ok ? 'ok' : 'error';
        result.textContent = JSON.stringify(reply, null, 2);
      });
    });
    $('#log-clear').addEventListener('click', () => $('#log').replaceChildren());
    for (const button of document.querySelectorAll('[data-bridge-request]')) {
      button.addEventListener('click', () => {
        const name = button.dataset.bridgeRequest;
        const status = $('#bridge-request-status');
        const result = $('#bridge-request-result');
        status.textContent = `${name}…`;
        send(`${bridgePrefix}/request/${name}`, {}, (reply) => {
          status.textContent = `${name}: ${reply && reply.status === 'ok' ? 'ok' : (reply && reply.error) || 'failed'}`;
          result.hidden = false;
          result.textContent = JSON.stringify(reply, null, 2);
        });
      });
    }
  }

  // ---------- bridge health ----------

  function renderBridge() {
    const rows = [['Bridge', bridge.state || 'unknown']];
    const info = bridge.info;
    if (info) {
      if (info.version) rows.push(['Version', info.version]);
      if (info.instance) rows.push(['Instance', info.instance]);
    }
    if (bridge.ready) {
      rows.push(['Broker', bridge.ready.mqtt || 'unknown']);
      if (bridge.ready.mqtt_error) rows.push(['Broker error', bridge.ready.mqtt_error]);
      rows.push(['Ready', bridge.ready.ready ? 'yes' : 'no']);
    }
    if (info && info.rooms && typeof info.rooms === 'object') {
      for (const [id, about] of Object.entries(info.rooms)) {
        const state = about && about.state ? about.state : '';
        rows.push([`Room ${id}`, about && about.reason ? `${state}: ${about.reason}` : state]);
      }
    }
    $('#bridge').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));

    const metrics = bridge.metrics;
    if (!metrics) return;
    const sum = (name) => (metrics.get(name) || []).reduce((a, b) => a + b, 0);
    const shownMetrics = [
      ['Broker connected', 'trueconf2mqtt_mqtt_connected'],
      ['Broker connects', 'trueconf2mqtt_mqtt_connects_total'],
      ['Published', 'trueconf2mqtt_mqtt_published_total'],
      ['Dropped', 'trueconf2mqtt_mqtt_dropped_total'],
      ['Rooms online', 'trueconf2mqtt_room_online'],
      ['Room events', 'trueconf2mqtt_events_total'],
      ['Commands ok', 'trueconf2mqtt_commands_ok_total'],
      ['Commands failed', 'trueconf2mqtt_commands_failed_total'],
      ['Task failures', 'trueconf2mqtt_task_failures_total'],
    ];
    $('#metrics').replaceChildren(...shownMetrics.filter(([, n]) => metrics.has(n))
      .flatMap(([label, name]) => [el('dt', { text: label }), el('dd', { 'data-metric': name, text: sum(name) })]));
  }

  // Prometheus text: `name{labels} value` per line; values of one name are listed per label set.
  function parseMetrics(text) {
    const values = new Map();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!match) continue;
      const value = Number(match[3]);
      if (Number.isNaN(value)) continue;
      const list = values.get(match[1]) || [];
      list.push(value);
      values.set(match[1], list);
    }
    return values;
  }

  async function poll() {
    try {
      // The probes need no token (docs/api.md): it is not sent where it is not needed.
      const ready = await fetch(new URL('readyz', location.href), { cache: 'no-store' });
      bridge.ready = await ready.json();
    } catch {
      bridge.ready = null;
    }
    try {
      const metrics = await fetch(new URL('metrics', location.href), { cache: 'no-store' });
      if (metrics.ok) bridge.metrics = parseMetrics(await metrics.text());
    } catch {
      // The WebSocket's state says whether the bridge is there.
    }
    renderBridge();
  }

  async function loadSchema() {
    try {
      const response = await fetch(withToken('api/schema'), { cache: 'no-store' });
      if (response.ok) applySchema(await response.json());
      else if (response.status === 401) setConnection('closed', 'refused: open this page with ?token=…');
    } catch {
      // Tried again on the next connect.
    }
  }

  function start() {
    wireConsole();
    renderParams();
    renderBridge();
    loadSchema();
    connect();
    poll();
    setInterval(poll, 5000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
