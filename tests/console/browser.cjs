// The console in a real browser (Debian chromium driven by playwright-core),
// against real nodes the Rust test started and seeded. Configuration comes
// from the environment (see tests/console_browser.rs); every check that
// fails is listed, and the exit status is non-zero if any did.
'use strict';
const path = require('path');
const fs = require('fs');
const tools = path.join(__dirname, '..', '..', 'tools', 'browser', 'node_modules');
const { chromium } = require(path.join(tools, 'playwright-core'));
const axeSource = fs.readFileSync(path.join(tools, 'axe-core', 'axe.min.js'), 'utf8');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const BASE = env('CONSOLE').replace(/\/$/, '');
const PASSWORD = env('PASSWORD');
const OVERDUE = env('OVERDUE_SUBJECT');
const HIT_PEER = env('HIT_PEER');
const HIT_VALUE = env('HIT_VALUE');
const RECORD = env('RECORD');           // e.g. /records/kh-antht/vr-child-1
const FULL_NAME = env('FULL_NAME');
const CASE = env('CASE');                // e.g. /cases/<id>
const AGREEMENT = env('AGREEMENT');      // e.g. /agreements/<id>
const IMPORT_FILE = env('IMPORT_FILE');   // 1,200 contact points and one refused
const HUB = env('HUB_CONSOLE').replace(/\/$/, '');  // the regional hub's console
const SHOTS = process.env.SCREENSHOTS || '';

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

async function signIn(browser, name, base = BASE) {
  const context = await browser.newContext({ locale: 'en-GB', bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${base}/signin`);
  await page.fill('#name', name);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return { context, page };
}

async function csrfOf(page) {
  return page.locator('input[name=csrf]').first().getAttribute('value');
}

async function setLanguage(context, page, base, lang) {
  await page.goto(`${base}/account`);
  const t = await csrfOf(page);
  await context.request.post(`${base}/account`, { form: { csrf: t, language: lang, time_zone: 'Asia/Phnom_Penh' } });
}

async function axe(page, label) {
  // The console's CSP allows no script at all; the test context bypasses it
  // to inject axe-core (bypassCSP), which is the only script ever run.
  await page.addScriptTag({ content: axeSource });
  const r = await page.evaluate(async () =>
    await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const v = r.violations.map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  check(v.length === 0, `axe-core finds no violation on ${label}${v.length ? ' — ' + v.join('; ') : ''}`);
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    // Signed out, every page sends you to sign in.
    {
      const ctx = await browser.newContext({ bypassCSP: true });
      const p = await ctx.newPage();
      await p.goto(`${BASE}/requests`);
      check(p.url().endsWith('/signin'), 'a signed-out visitor is sent to sign in');
      await axe(p, 'sign-in (en)');
      await p.goto(`${BASE}/signin?lang=ar`);
      check(await p.getAttribute('html', 'dir') === 'rtl', 'the Arabic sign-in page is right to left');
      await axe(p, 'sign-in (ar)');
      await p.fill('#name', 'ana');
      await p.fill('#password', 'not the password');
      await p.click('button[type=submit]');
      check(await p.locator('#signin-error').count() === 1, 'a wrong password is refused with a message');
      await ctx.close();
    }

    const { context, page } = await signIn(browser, 'ana');
    check(new URL(page.url()).pathname === '/', 'the officer signs in and lands on Home');
    const cookies = await context.cookies();
    const sess = cookies.find((c) => c.name === 'liaison_session');
    check(sess && sess.httpOnly && sess.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');

    // Home: the overdue request first; acknowledge it.
    const first = page.locator('section[aria-labelledby=h-requests] tbody tr').first();
    check((await first.innerText()).includes(OVERDUE), 'the overdue request shows first on Home');
    check((await first.getAttribute('class') || '').includes('overdue'), 'it is marked overdue (with the word, not colour alone)');
    await shot(page, 'home');
    await first.locator('a').first().click();
    await shot(page, 'request');
    await Promise.all([page.waitForNavigation(), page.click('button[value=acknowledge]')]);
    check((await page.locator('.flash').innerText()).length > 0 && (await page.content()).toLowerCase().includes('acknowledged'),
      'the overdue request is acknowledged from its page');

    // A hit leads to a pre-filled request.
    await page.goto(`${BASE}/search`);
    await page.selectOption('#c-peer', HIT_PEER);
    await page.fill('#c-value', HIT_VALUE);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/search/check"] button')]);
    await shot(page, 'search-hit');
    const requestLink = page.locator('#outcomes a.button').first();
    check(await requestLink.count() === 1, 'the check reports a hit with a link to request the record');
    await requestLink.click();
    const refs = await page.inputValue('#refs');
    check(refs.length > 0 && (await page.inputValue('#body')).includes(refs) && await page.inputValue('#to') === HIT_PEER,
      'the new request is pre-filled with the peer and the hit reference');

    // Showing a victim's identity asks for a reason and is audited.
    await page.goto(`${BASE}${RECORD}`);
    check(!(await page.content()).includes(FULL_NAME), 'the victim identity is masked by default');
    check((await page.locator('.tlp-banner').innerText()).includes('TLP:'), 'the TLP banner names the handling in words');
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/reveal"] button')]).catch(() => {});
    check(!(await page.content()).includes(FULL_NAME), 'without a reason the identity stays masked');
    await page.fill('#reason', 'family tracing for the return interview');
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/reveal"] button')]);
    check((await page.content()).includes(FULL_NAME), 'with a reason the identity is shown');
    check((await page.locator('section[aria-labelledby=h-views]').innerText()).includes('family tracing'),
      'the page lists who viewed the identity and why');
    await shot(page, 'record-identity');

    // A share the policy engine refuses says why, before anything is sent.
    await page.goto(`${BASE}${RECORD}`);
    await page.selectOption('#peer', HIT_PEER);
    await page.selectOption('#purpose', { label: 'investigation' });
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/preview"] button')]);
    const preview = page.locator('#preview');
    check((await preview.getAttribute('class')).includes('refused'), 'the preview refuses the share');
    check((await preview.locator('.reason').innerText()).trim().length > 10, 'and says why');
    check(await page.locator('form[action$="/share"]').count() === 0, 'a refused preview offers no send button');
    await shot(page, 'share-preview-refused');

    // A child's return is blocked with the missing safeguards listed.
    await page.goto(`${BASE}${CASE}`);
    const missing = await page.locator('tr.missing').allInnerTexts();
    check(missing.length > 0, `the missing safeguards are listed (${missing.length})`);
    await shot(page, 'case');
    await Promise.all([page.waitForNavigation(), page.click(`form[action$="/advance"] button`)]);
    check((await page.locator('.flash').innerText()).toLowerCase().includes('safeguard') ||
      (await page.locator('.flash').innerText()).length > 0, 'advancing is refused by the node');
    check(await page.locator('ol.stepper li[aria-current=step]').count() === 1, 'the stage did not move');

    // A form without its CSRF token is refused.
    const noToken = await context.request.post(`${BASE}/account`, { form: { language: 'fr' }, maxRedirects: 0 });
    check(noToken.status() === 403, `a form without its CSRF token is refused (${noToken.status()})`);
    const wrongToken = await context.request.post(`${BASE}/account`, { form: { language: 'fr', csrf: 'x'.repeat(43) }, maxRedirects: 0 });
    check(wrongToken.status() === 403, 'a form with another token is refused');

    // A bulk import larger than one call runs in the background and its page
    // shows progress until the end: 1,200 stored, the refused one listed.
    await page.goto(`${BASE}/records/import`);
    await page.setInputFiles('#file', IMPORT_FILE);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/records/import"] button')]);
    check(/\/records\/import\/[\w-]+$/.test(new URL(page.url()).pathname), 'the import goes to its progress page');
    const jobUrl = page.url();
    let status = '';
    for (const deadline = Date.now() + 120000; Date.now() < deadline;) {
      status = await page.locator('p[role=status]').innerText().catch(() => '');
      if (status.startsWith('1200 of 1201')) break;
      // The page refreshes itself every second while the import runs.
      await page.waitForEvent('load', { timeout: 5000 }).catch(() => {});
    }
    check(status.startsWith('1200 of 1201'), `the import ends with 1200 of 1201 stored (${status})`);
    check(await page.locator('meta[http-equiv=refresh]').count() === 0, 'a finished import stops refreshing');
    const refused = await page.locator('table tbody tr').allInnerTexts();
    check(refused.length === 1 && refused[0].startsWith('1201') && refused[0].includes('country'),
      `the refused record is listed with its number and field (${refused})`);
    await axe(page, 'import progress (en)');

    // An officer cannot sign agreements: the node refuses it.
    await page.goto(`${BASE}${AGREEMENT}`);
    check(await page.locator('button[value=sign]').count() === 0, 'an officer is not offered to sign');
    const token = await csrfOf(page);
    await context.request.post(`${BASE}${AGREEMENT}/act`, { form: { csrf: token, action: 'sign', version: '1' }, maxRedirects: 0 });
    await page.goto(`${BASE}${AGREEMENT}`);
    check((await page.locator('.flash').innerText()).includes('Not allowed'), 'signing as an officer is refused by the node');
    await shot(page, 'agreement');

    // An auditor cannot share.
    {
      const a = await signIn(browser, 'aud');
      await a.page.goto(`${BASE}${RECORD}`);
      check(await a.page.locator('form[action$="/preview"]').count() === 0, 'an auditor is not offered to share');
      const t = await csrfOf(a.page);
      await a.context.request.post(`${BASE}${RECORD}/share`, { form: { csrf: t, peer: HIT_PEER, purpose: '4' }, maxRedirects: 0 });
      await a.page.goto(`${BASE}${RECORD}`);
      check((await a.page.locator('.flash').innerText()).includes('Not allowed'), 'sharing as an auditor is refused by the node');
      const other = await a.context.request.get(jobUrl, { maxRedirects: 0 });
      check(other.status() === 404, `another user's import is not found (${other.status()})`);
      await a.page.goto(`${BASE}/admin/audit`);
      check((await a.page.content()).includes('protected.view'), 'the auditor sees the identity view on the audit log');
      await shot(a.page, 'audit');
      await a.context.close();
    }

    // Every page passes axe-core, in English and in Arabic.
    const pages = ['/', '/requests', '/requests?box=sent', '/requests/new', '/search', RECORD, `${RECORD}/edit`,
      '/records/new?kind=4', '/records/import', '/cases', CASE, '/agreements', AGREEMENT, '/contacts', '/account'];
    for (const lang of ['en', 'ar']) {
      await setLanguage(context, page, BASE, lang);
      for (const p of pages) {
        await page.goto(`${BASE}${p}`);
        if (lang === 'ar') check(await page.getAttribute('html', 'dir') === 'rtl', `${p} is right to left in Arabic`);
        await axe(page, `${p} (${lang})`);
      }
      if (lang === 'ar') await shot(page, 'contacts-ar');
    }
    {
      const adm = await signIn(browser, 'admin');
      for (const p of ['/admin', '/admin/audit']) {
        await adm.page.goto(`${BASE}${p}`);
        await axe(adm.page, `${p} (en)`);
      }
      await shot(adm.page, 'admin');
      await adm.context.close();
    }

    // Hub: members and directory version, the regional report with the
    // small figure suppressed (and marked in words), the indicators.
    {
      const h = await signIn(browser, 'admin', HUB);
      for (const lang of ['en', 'ar']) {
        await setLanguage(h.context, h.page, HUB, lang);
        await h.page.goto(`${HUB}/hub?period=2025`);
        if (lang === 'en') {
          const members = await h.page.locator('section[aria-labelledby=h-members]').innerText();
          check(members.includes('kh-antht') && members.includes('vn-c02'), 'the hub lists its members');
          const countries = await h.page.locator('section[aria-labelledby=h-report] table').first().innerText();
          check(countries.includes('KH') && countries.includes('41'), 'the regional report shows a country above the threshold');
          const vn = h.page.locator('section[aria-labelledby=h-report] tr', { hasText: 'VN' }).first();
          check(await vn.locator('abbr').count() === 1 && !(await vn.innerText()).includes('3'),
            'the country below the threshold is suppressed and marked so in words');
          check(await h.page.locator('section[aria-labelledby=h-compliance]').count() === 1, 'the compliance indicators are shown');
          await shot(h.page, 'hub');
        } else {
          check(await h.page.getAttribute('html', 'dir') === 'rtl', '/hub is right to left in Arabic');
        }
        await axe(h.page, `/hub (${lang})`);
        await h.page.goto(`${HUB}/contacts`);
        await axe(h.page, `hub /contacts (${lang})`);
      }
      await h.context.close();
    }
  } catch (e) {
    failures.push(`error: ${e && e.stack || e}`);
    console.log(`FAIL ${e && e.stack || e}`);
  } finally {
    await browser.close();
  }
  if (failures.length) {
    console.log(`\n${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log('\nall browser checks passed');
})();
