// consentgate banner: one ES module, no dependencies, no build step.
// It asks the server for the visitor's state (GET state), shows the two-layer banner when
// there is no valid decision, posts decisions (POST decision) and then brings blocked
// elements to life in document order without a reload. Withdrawing consent reloads the
// page so the server's blocking takes over again. All texts come from the server as JSON
// and are set as text, never as markup.

const D = document
const W = window
const api = (name) => new URL(name, import.meta.url).href
const SERVICE = 'data-consentgate-service'
const PREFIX = 'data-consentgate-'
// The attributes the server renames to data-consentgate-<name>, per element: only these
// are ever restored, so a stray data-consentgate-href on a link stays inert.
const RENAMED = {
  SCRIPT: ['src', 'type'],
  IMG: ['src', 'srcset'],
  SOURCE: ['src', 'srcset'],
  IFRAME: ['src'],
  FRAME: ['src'],
  EMBED: ['src'],
  OBJECT: ['data'],
  VIDEO: ['src', 'poster'],
  AUDIO: ['src'],
  LINK: ['href', 'imagesrcset']
}
// URLs that would run code in the page are never restored.
const UNSAFE = /^\s*(javascript|vbscript|data):/i
// A tracker that never answers must not hold back the scripts after it.
const SCRIPT_WAIT_MS = 5000

const S = {
  state: null, // the body of GET state, updated after each decision
  root: null, // the banner element, built on first show
  opener: null, // the element that had focus when the banner opened
  busy: false,
  chain: Promise.resolve() // activations run one after another
}

// --- helpers -------------------------------------------------------------------------

function h (tag, attrs, ...children) {
  const el = D.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === true) el.setAttribute(k, '')
    else if (v != null && v !== false) el.setAttribute(k, v)
  }
  el.append(...children.flat(9).filter((c) => c != null && c !== false))
  return el
}

const texts = () => S.state.catalogue.texts
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m))
const services = () => S.state.catalogue.services
const optional = () => services().filter((s) => s.category !== 'necessary')
const byId = (id) => services().find((s) => s.id === id)

/** The optional services that may run now: granted and not objected to by DNT/GPC. */
function allowed () {
  const st = S.state
  return new Set(st.granted.filter((id) => !st.objected.includes(id)))
}

function necessary () {
  return new Set(services().filter((s) => s.category === 'necessary').map((s) => s.id))
}

// Created at start-up: screen readers announce changes only in a region they already know.
const live = h('div', { 'data-consentgate': 'status', role: 'status', class: 'cg-sr' })

function announce (text) {
  live.textContent = ''
  setTimeout(() => { live.textContent = text }, 50)
}

// --- state and decisions ---------------------------------------------------------------

async function fetchState () {
  const lang = encodeURIComponent(D.documentElement.lang || '')
  const res = await fetch(api('state?page_lang=' + lang), {
    credentials: 'same-origin',
    headers: { accept: 'application/json' }
  })
  if (!res.ok) throw new Error('consentgate: GET state answered ' + res.status)
  S.state = await res.json()
  return S.state
}

/** Post a decision; returns the receipt, or null when it was not stored. */
async function decide (choice) {
  if (S.busy) return null
  S.busy = true
  const before = allowed()
  try {
    const st = S.state
    const res = await fetch(api('decision'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ ...choice, page: location.href, language: st.language, fingerprint: st.fingerprint })
    })
    if (res.status === 409) {
      // The settings changed since the banner was built: show the new one, record nothing.
      const open = S.root && !S.root.hidden && S.root.classList.contains('cg-open') ? 2 : 1
      await fetchState()
      show(open, true)
      S.root.querySelector('.cg-error').textContent = texts().error
      return null
    }
    if (!res.ok) throw new Error('consentgate: POST decision answered ' + res.status)
    // Page scripts get the receipt without the consent id (the cookie keeps it HttpOnly).
    const { consent_id: _, ...receipt } = await res.json()
    Object.assign(S.state, { decided: true, granted: receipt.granted })
    consentModeUpdate()
    const now = allowed()
    if ([...before].some((id) => !now.has(id)) || (S.state.csp === 'enforce' && receipt.granted.length)) {
      // Withdrawal: only the server can take back what already ran. Under an enforced CSP
      // the page's policy lists only what was allowed when it loaded: reload for the new one.
      location.reload()
      return receipt
    }
    hide()
    announce(texts().saved)
    await activate()
    D.dispatchEvent(new CustomEvent('consentgate:change', {
      detail: { action: receipt.action, granted: receipt.granted, allowed: [...now], receipt }
    }))
    return receipt
  } catch (err) {
    showError()
    throw err
  } finally {
    S.busy = false
  }
}

function showError () {
  if (!S.root || S.root.hidden) show(1)
  S.root.querySelector('.cg-error').textContent = texts().error
}

// Google Consent Mode v2: the server injected the default; each decision sends an update.
function consentModeUpdate () {
  if (!Array.isArray(W.dataLayer)) return
  const ok = allowed()
  const update = { ad_storage: 'denied', analytics_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied' }
  for (const s of services()) {
    for (const signal of s.consent_mode || []) {
      if (update[signal] !== 'granted') update[signal] = ok.has(s.id) || s.category === 'necessary' ? 'granted' : 'denied'
    }
  }
  // gtag() pushes its arguments object, not an array: Google's tags read it that way.
  const gtag = function () { W.dataLayer.push(arguments) }
  gtag('consent', 'update', update)
  gtag('set', 'ads_data_redaction', update.ad_storage !== 'granted')
}

// --- bringing blocked elements to life ------------------------------------------------------

function waitFor (script) {
  return new Promise((resolve) => {
    script.onload = script.onerror = resolve
    setTimeout(resolve, SCRIPT_WAIT_MS)
  })
}

function nocookie (url) {
  // YouTube embeds load in the privacy-enhanced mode, as the privacy policy promises.
  return url.replace(/^((?:https?:)?\/\/)(?:www\.)?youtube\.com\/embed\//i, '$1www.youtube-nocookie.com/embed/')
}

function restore (el) {
  for (const name of RENAMED[el.tagName] || []) {
    const value = el.getAttribute(PREFIX + name)
    if (value == null || UNSAFE.test(value)) continue
    el.removeAttribute(PREFIX + name)
    el.setAttribute(name, el.tagName === 'IFRAME' && name === 'src' ? nocookie(value) : value)
  }
  el.removeAttribute(SERVICE)
  const ph = el.previousElementSibling
  if (ph && ph.hasAttribute('data-consentgate-placeholder')) ph.remove()
  if (el.hasAttribute(PREFIX + 'hidden')) {
    el.removeAttribute(PREFIX + 'hidden')
    el.hidden = false // the server hid the embed behind its placeholder; the author did not
  }
  if (el.tagName === 'SOURCE' && el.parentElement && el.parentElement.load) el.parentElement.load()
}

function revive (old) {
  // A script only runs when it is created anew; copy every attribute but ours.
  const s = D.createElement('script')
  const plain = (v) => v.trim().toLowerCase() === 'text/plain'
  for (const { name, value } of old.attributes) {
    const base = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : null
    if (name === SERVICE || (name === 'type' && plain(value))) continue
    if (base === 'type' || base === 'src') {
      if (!plain(value) && !UNSAFE.test(value)) s.setAttribute(base, value)
    } else s.setAttribute(name, value)
  }
  s.nonce = old.nonce // the browser hides a nonce from getAttribute; copy the property
  if (!s.hasAttribute('src')) s.text = old.text
  else s.async = old.hasAttribute('async')
  old.replaceWith(s)
  return s
}

function blocked (el) {
  // The server lets allowed elements through with their service attribute: not ours to run.
  if (el.tagName === 'SCRIPT') return el.type.trim().toLowerCase() === 'text/plain'
  return (RENAMED[el.tagName] || []).some((name) => el.hasAttribute(PREFIX + name))
}

/** Activate every blocked element whose services are all allowed now, one pass at a time. */
function activate () {
  S.chain = S.chain.then(activateNow, activateNow)
  return S.chain
}

async function activateNow () {
  const ok = allowed()
  const need = necessary()
  const fits = (el) => {
    const ids = el.getAttribute(SERVICE).split(/\s+/).filter(Boolean)
    return ids.length > 0 && ids.every((id) => ok.has(id) || need.has(id))
  }
  const els = [...D.querySelectorAll('[' + SERVICE + ']')].filter(
    (el) => !el.closest('[data-consentgate="banner"]') && blocked(el) && fits(el)
  )
  // Scripts run in document order: an inline script waits for the external ones before it,
  // the way the parser would have run them.
  let pending = []
  for (const el of els) {
    if (el.tagName !== 'SCRIPT') { restore(el); continue }
    const external = el.hasAttribute(PREFIX + 'src') || el.hasAttribute('src')
    if (!external) { await Promise.all(pending); pending = [] }
    const s = revive(el)
    // Deferred and module scripts ran after the inline ones below them: nothing waits for them.
    if (external && !s.async && !s.defer && s.type !== 'module') pending.push(waitFor(s))
  }
  await Promise.all(pending)
}

// --- the banner -----------------------------------------------------------------------

function lifetime (c) {
  const t = texts()
  return c.lifetime_days == null ? t.session : fill(t.days, { n: Math.round(c.lifetime_days * 10) / 10 })
}

function serviceDetails (s, checked) {
  const t = texts()
  const p = s.provider
  const id = 'cg-s-' + s.id
  const fixed = s.category === 'necessary'
  const rows = [
    [t.provider, p.name + ', ' + p.address + ' (' + p.country + ')'],
    [t.purpose, s.purposes.length ? s.purposes.join('; ') : s.description]
  ]
  if (s.cookies.length) rows.push([t.cookies, s.cookies.map((c) => c.name + ' (' + lifetime(c) + ')').join(', ')])
  if (s.data_transfer_countries.length) rows.push([t.transfer, s.data_transfer_countries.join(', ')])
  return h('div', { class: 'cg-svc' },
    h('div', { class: 'cg-row' },
      h('input', { type: 'checkbox', id, [SERVICE]: s.id, checked: fixed || checked, disabled: fixed }),
      h('label', { for: id }, s.name)
    ),
    s.description && s.purposes.length ? h('p', null, s.description) : null,
    h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
    h('p', null, h('a', { href: s.privacy_policy_url, target: '_blank', rel: 'noopener noreferrer' },
      fill(t.placeholder_privacy, { provider: p.name })))
  )
}

function category (c) {
  const t = texts()
  const fixed = c.id === 'necessary'
  const ok = S.state.decided ? new Set(S.state.granted) : new Set()
  const list = c.services.map(byId)
  const id = 'cg-c-' + c.id
  return h('div', { class: 'cg-cat', role: 'group', 'aria-labelledby': id + '-l' },
    h('div', { class: 'cg-row' },
      h('input', { type: 'checkbox', id, 'data-consentgate-category': c.id, checked: fixed, disabled: fixed, 'aria-describedby': id + '-d' }),
      h('label', { for: id, id: id + '-l' }, c.name, fixed ? h('span', { class: 'cg-on' }, ' (' + t.always_on + ')') : null)
    ),
    h('p', { id: id + '-d' }, c.description),
    list.length
      ? h('details', null, h('summary', null, fill(t.services, { n: list.length })), list.map((s) => serviceDetails(s, ok.has(s.id))))
      : null
  )
}

function signalNotice () {
  const st = S.state
  if (!st.signals.length || !st.objected.length) return null
  return h('p', { class: 'cg-note' }, fill(texts().signal_notice, {
    signals: st.signals.join(', '),
    services: st.objected.map((id) => (byId(id) || { name: id }).name).join(', ')
  }))
}

function build () {
  const st = S.state
  const c = st.catalogue
  const t = c.texts
  const abroad = optional().some((s) => s.data_transfer_countries.length)
  const button = (action, label, extra) => h('button', { type: 'button', class: 'cg-btn', 'data-consentgate-action': action, ...extra }, label)
  const root = h('section', {
    'data-consentgate': 'banner',
    role: 'dialog',
    'aria-modal': 'false',
    'aria-labelledby': 'cg-title',
    'aria-describedby': 'cg-desc',
    lang: c.language,
    tabindex: '-1',
    hidden: true
  },
  h('div', { class: 'cg-box' },
    h('h2', { id: 'cg-title' }, t.title),
    h('div', { id: 'cg-desc' },
      h('p', null, t.body),
      abroad ? h('p', null, t.third_country) : null,
      signalNotice()
    ),
    h('p', { class: 'cg-links' },
      h('a', { href: c.policy_url }, t.privacy_link), ' ',
      h('a', { href: c.imprint_url }, t.imprint_link)
    ),
    h('div', { class: 'cg-l2', hidden: true },
      c.categories.map(category),
      st.decided && st.granted.length ? h('p', { class: 'cg-note' }, t.withdraw_notice) : null
    ),
    h('p', { class: 'cg-error', role: 'alert' }),
    h('div', { class: 'cg-btns' },
      button('accept-all', t.accept_all),
      button('reject-all', t.reject_all),
      button('settings', t.settings),
      button('save', t.save, { hidden: true })
    )
  ))
  root.addEventListener('change', onToggle)
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); hide() } // closing is no consent
  })
  for (const el of root.querySelectorAll('[data-consentgate-category]')) syncCategory(el.dataset.consentgateCategory, root)
  return root
}

function rebuild () {
  if (S.root) S.root.remove()
  S.root = build()
  D.body.prepend(S.root)
}

function syncCategory (cat, root) {
  const box = root.querySelector('input[data-consentgate-category="' + cat + '"]')
  if (!box || box.disabled) return
  const toggles = [...root.querySelectorAll('input[' + SERVICE + ']')].filter((i) => byId(i.getAttribute(SERVICE)).category === cat)
  const on = toggles.filter((i) => i.checked).length
  box.checked = on > 0 && on === toggles.length
  box.indeterminate = on > 0 && on < toggles.length
}

function onToggle (e) {
  const el = e.target
  const cat = el.getAttribute('data-consentgate-category')
  if (cat) {
    for (const i of S.root.querySelectorAll('input[' + SERVICE + ']')) {
      if (!i.disabled && byId(i.getAttribute(SERVICE)).category === cat) i.checked = el.checked
    }
  } else if (el.hasAttribute(SERVICE)) {
    syncCategory(byId(el.getAttribute(SERVICE)).category, S.root)
  }
}

function layer (n) {
  const r = S.root
  r.querySelector('.cg-l2').hidden = n !== 2
  r.querySelector('[data-consentgate-action="save"]').hidden = n !== 2
  r.querySelector('[data-consentgate-action="settings"]').hidden = n === 2
  r.classList.toggle('cg-open', n === 2)
}

function show (n, again) {
  if (!S.root || S.root.hidden || again) {
    // Built anew each time it opens, so toggles and notices match the latest decision.
    if (!S.root || S.root.hidden) S.opener = D.activeElement
    rebuild()
  }
  S.root.querySelector('.cg-error').textContent = ''
  S.root.hidden = false
  layer(n)
  // Whatever Tab reaches on the page behind scrolls clear of the banner.
  D.documentElement.style.scrollPaddingBottom = S.root.offsetHeight + 'px'
  if (n === 2) {
    const first = S.root.querySelector('.cg-l2 input:not([disabled])')
    ;(first || S.root).focus()
  } else S.root.focus()
}

function hide () {
  if (!S.root || S.root.hidden) return
  S.root.hidden = true
  D.documentElement.style.scrollPaddingBottom = ''
  const back = S.opener
  S.opener = null
  if (back && back !== D.body && back.isConnected) back.focus()
}

function chosen () {
  const choice = {}
  for (const i of S.root.querySelectorAll('input[' + SERVICE + ']')) {
    if (!i.disabled) choice[i.getAttribute(SERVICE)] = i.checked
  }
  return choice
}

// --- placeholders and actions -------------------------------------------------------------

function embedOf (button) {
  const ph = button && button.closest('[data-consentgate-placeholder]')
  const embed = ph && ph.nextElementSibling
  return embed && embed.hasAttribute(SERVICE) ? embed : null
}

function loadOnce (button) {
  const embed = embedOf(button)
  if (!embed) return
  restore(embed) // this one embed, now; nothing is recorded
  embed.focus()
}

async function allowAlways (id, button) {
  const embed = embedOf(button)
  const choice = {}
  for (const s of optional()) choice[s.id] = S.state.decided && S.state.granted.includes(s.id)
  choice[id] = true
  const receipt = await decide({ services: choice })
  if (embed && embed.isConnected && receipt) embed.focus() // its button is gone with the placeholder
  return receipt
}

async function onClick (e) {
  const target = e.target instanceof Element ? e.target : null
  if (!target) return
  const opener = target.closest('[data-consentgate-open]')
  if (opener) {
    // Without the state (the server did not answer) a link opener still leads somewhere.
    if (!ready && opener.hasAttribute('href')) { start(); return }
    e.preventDefault()
    await (ready || start())
    show(2)
    return
  }
  const button = target.closest('[data-consentgate-action]')
  if (!button) return
  const action = button.getAttribute('data-consentgate-action')
  if (action === 'load-once') return loadOnce(button) // needs no state
  await (ready || start())
  if (action === 'accept-all') await decide({ accept: 'all' })
  else if (action === 'reject-all') await decide({ accept: 'none' })
  else if (action === 'settings') show(2)
  else if (action === 'save') await decide({ services: chosen() })
  else if (action === 'allow-always') await allowAlways(button.getAttribute('data-consentgate-for'), button)
}

// --- start ----------------------------------------------------------------------------------

// The server preloads banner.css without blocking the page's first paint; it is applied
// here, and the banner waits for it (at most a few seconds) so it never shows unstyled.
function styled () {
  const pre = D.querySelector('link[data-consentgate="style"]')
  if (!pre) return null
  const css = h('link', { rel: 'stylesheet', href: pre.href, nonce: pre.nonce || null })
  const done = new Promise((resolve) => {
    css.onload = css.onerror = resolve
    setTimeout(resolve, 3000)
  })
  D.head.append(css)
  return done
}

let ready = null
let style = null
function start () {
  style = style || styled()
  // Asked again on the next click when the server did not answer.
  ready = Promise.all([fetchState(), style]).then(async ([st]) => {
    if (!st.decided) show(1)
    // A service the browser objects to (DNT/GPC) would be granted but still not load.
    for (const b of D.querySelectorAll('[data-consentgate-action="allow-always"]')) {
      b.hidden = st.objected.includes(b.getAttribute('data-consentgate-for'))
    }
    await activate() // elements a cached page still holds back
    return st
  })
  ready.catch((err) => { console.error(err); ready = null })
  return ready
}

if (!W.consentgate) { // the module included twice must not run twice
  D.body.append(live)
  start()
  D.addEventListener('click', (e) => { onClick(e).catch((err) => console.error(err)) })
  const later = (fn) => (...args) => (ready || start()).then(() => fn(...args))
  W.consentgate = {
    get ready () { return ready || start() },
    get state () { return S.state },
    allows: (id) => !!S.state && (necessary().has(id) || allowed().has(id)),
    open: later((n) => show(n || 2)),
    close: hide,
    acceptAll: later(() => decide({ accept: 'all' })),
    rejectAll: later(() => decide({ accept: 'none' })),
    save: later((choice) => decide({ services: choice })),
    allow: later((id) => allowAlways(id))
  }
}
