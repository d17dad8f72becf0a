"""One call's TwiML session: fetch the document, execute its verbs, turn them into SIP.

The order of events follows spec §4.2 step 9 onwards: the call rings (180) while the voice URL
is fetched and through any ``<Redirect>`` chain; the first verb that needs media answers it
(200 OK + SDP); ``<Reject>`` as the first verb refuses it (486 busy / 404); the end of the
document hangs up (BYE). A failed voice URL goes to the fallback URL with ``ErrorCode`` and
``ErrorUrl``; when both fail the ``webhook_failure`` setting decides (default 500 with
``X-Twilio-Error: 11200``). Every failure leaves an alert on the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urljoin

from ..model.codes import VoiceError
from ..model.presentation import WebhookParams, plain_uri, sip_header_params, to_from_request_uri
from ..model.sids import new_call_sid
from ..regions.node import CallSession
from ..ua.client import Auth
from . import media, offline
from .dial import DialLeg, DialOutcome, branches_for, dial_sip, make_lookup, parse_sip_target
from .status import StatusCallbacks
from .twiml import NOT_EMULATED, TwimlDocument, Verb, parse_twiml
from .webhook import Reply, WebhookClient, check_twiml_reply

log = logging.getLogger("siptwin.voice")

T = TypeVar("T")
STOP = object()  # a verb ended the call (or its TwiML); nothing more runs
MAX_LOOP = 1000  # loop="0" means "until the caller hangs up"; bound it all the same
APPLICATION_ERROR_PROMPT = "We are sorry, an application error has occurred. Goodbye."
RECORD_MAX_SECONDS = 3600


def call_facts(session: CallSession) -> tuple[WebhookParams, list[str]]:
    """The base parameters of the call and the X- headers the total cap left out."""
    call, domain, fidelity = session.call, session.domain, session.fidelity
    selection = sip_header_params(session.invite.headers, fidelity.repeated_x_header,
                                  int(fidelity.x_header_total_cap or 0))
    facts = WebhookParams(
        account_sid=domain.account_sid,
        call_sid=call.sid or "",
        from_=plain_uri(call.from_uri),
        to=to_from_request_uri(session.invite, fidelity.to_parameter),
        sip_domain=domain.domain_name,
        sip_domain_sid=domain.sid,
        sip_call_id=call.call_id,
        sip_source_ip=call.source_ip,
        sip_username=call.username,
        sip_headers=tuple(selection.params),
    )
    return facts, selection.dropped


# The method of CallRun that carries out each emulated verb.
_VERB_METHODS = {"Say": "_say", "Play": "_play", "Pause": "_pause", "Hangup": "_hangup",
                 "Reject": "_reject", "Redirect": "_redirect", "Gather": "_gather",
                 "Dial": "_dial", "Record": "_record"}


class CallRun:
    def __init__(self, webhooks: WebhookClient, session: CallSession,
                 media_ports: media.MediaPorts | None = None) -> None:
        self.webhooks = webhooks
        self.session = session
        self.call = session.call
        self.domain = session.domain
        self.fidelity = session.fidelity  # one call keeps the settings it started with
        self._ended = session.ended  # (asked several times a call)
        self.facts, dropped = call_facts(session)
        for name in dropped:  # `siptwin explain` turns these into its x-header-dropped finding
            self.call.note(f"X- header {name} not passed to the webhook: the total "
                           f"exceeds x_header_total_cap={self.fidelity.x_header_total_cap}")
        self.media = media.MediaStream(
            session.region.address, on_digit=session.put_digit,
            inactivity_timeout=float(self.fidelity.rtp_inactivity_timeout),
            on_inactive=self._media_inactive, peer_host=self.call.source_ip, ports=media_ports)
        session.on_media_change = self._media_changed
        # Most domains have no status callback URL: then no callback is ever sent, and none is
        # asked for (StatusCallbacks.event would only return).
        status_url = self.domain.voice_status_callback_url
        self.status = StatusCallbacks(
            webhooks, self.call, self.facts, status_url,
            self.domain.voice_status_callback_method, self.domain.auth_token,
            self.fidelity) if status_url else None
        self.redirects = 0

    # ------------------------------------------------------------------ the whole call
    async def run(self) -> None:
        self.call.processing_region = self.domain.region
        status = self.status
        if status is not None:
            status.event("initiated", "initiated")
            status.event("ringing", "ringing")
        try:
            if self.domain.voice_url:
                document = await self._initial_document()
            else:
                document = await self._unconfigured()
            while document is not None and not self.ended:
                document = await self._execute(document)
            if not self.ended:
                if not self.session.answered:  # e.g. an empty <Response/>: answered, then BYE
                    await self.answer()
                await self.session.hangup()
        except Exception:
            log.exception("TwiML execution failed for %s", self.call.sid)
            self._alert(VoiceError(12400, "the twin failed while executing TwiML"))
            if self.session.answered:
                await self.session.hangup()
            else:
                await self.session.reject(500, "Server Internal Error")
        finally:
            self.media.close()
            # The callbacks point back at this run: dropped, the call's objects go with their
            # last reference instead of waiting, as a cycle, for a full collection.
            self.media.on_digit = self.media.on_inactive = None
            self.session.on_media_change = None
            self.call.media = {"packets_sent": self.media.packets_sent,
                               "packets_received": self.media.packets_received,
                               "digits_received": "".join(self.media.digits_received),
                               "packets_ignored": self.media.packets_ignored,
                               "rtcp_sent": self.media.rtcp_sent,
                               "rtcp_received": self.media.rtcp_received}
            if self.media.srtp is not None:
                self.call.media["srtp"] = {"suite": self.media.srtp.suite,
                                           "rejected": self.media.srtp.counters.rejected,
                                           "rejected_rtcp": self.media.srtp.counters.rejected_rtcp,
                                           "replayed": self.media.srtp.counters.replayed}
            if status is not None:
                status.event("completed", self.call.status, self.call.duration)
                await status.finish(float(self.fidelity.webhook_total_timeout) * 2)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def call_status(self) -> str:
        if self.ended:
            return self.call.status
        return "in-progress" if self.session.answered else "ringing"

    def _alert(self, error: VoiceError) -> None:
        self.call.alert(error.code, error.message, time.time(), error.detail)

    async def answer(self) -> None:
        if self.session.answered or self.ended:
            return
        try:
            # Read before answering: once the 200 is sent the transaction keeps the INVITE
            # only for matching and forgets its decoded parts.
            offer = self.session.invite.sdp
        except ValueError:
            offer = None
        port = await self.media.open()
        await self.session.answer(port)
        if self.session.answered:
            if self.status is not None:
                self.status.event("answered", "in-progress")
            if self.session.late_offer:
                # Our 200 carried the offer: media starts once the ACK brings the answer.
                their_answer = await self._until_ended(self.session.remote_answer())
                self.media.plan = media.plan_late_offer(their_answer) if their_answer else None
                if self.media.plan is None and not self.ended:
                    self.call.note("late offer: no RTP destination in the ACK's SDP "
                                   "answer, media not sent")
                keys = (media.late_answer_keys(their_answer, self.session.srtp_key)
                        if their_answer is not None and self.session.srtp_key else None)
            else:
                self.media.plan = media.plan_media(
                    offer, self.session.media_description or self.session.media_answer)
                if self.media.plan is None:
                    self.call.note("no RTP destination in the offer: media not sent")
                keys = self.session.srtp
            self._key_media(keys)
        self.media.release_early()

    def _media_changed(self, offer, answer) -> None:
        """A re-INVITE (hold, resume, new address or keys): the same stream, re-planned."""
        plan = media.plan_media(offer, answer.description)
        if self.session.srtp_key is not None:
            self._key_media(answer.crypto)
            if answer.crypto is None:
                return
        self.media.plan = plan

    def _media_inactive(self) -> None:
        """No RTP from the caller for rtp_inactivity_timeout seconds: Twilio ends the call
        with warning 32014."""
        self._alert(VoiceError(32014, f"no RTP for {self.media.inactivity_timeout:g} s"))
        asyncio.ensure_future(self.session.hangup())

    def _key_media(self, keys) -> None:
        """SRTP both ways on a secure domain; a secure call never falls back to plain RTP."""
        if self.session.srtp_key is None:
            return
        if keys is None:
            self.media.plan = None
            self.call.note("secure call without an agreed SDES key: media not sent")
            return
        from .srtp import SrtpContext  # libsrtp is loaded only for secure calls

        theirs, ours = keys
        current = self.media.srtp
        if current is None or current.keys != (theirs.suite, theirs.key, ours.suite, ours.key):
            self.media.srtp = SrtpContext(theirs, ours)  # new keys: new replay windows

    async def _until_ended(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None when the caller hangs up first (the work is abandoned)."""
        task = asyncio.ensure_future(work)
        ended = asyncio.ensure_future(self.session.ended.wait())
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    # ------------------------------------------------------------------ fetching TwiML
    async def _fetch(self, kind: str, url: str, method: str,
                     params: list[tuple[str, str]]) -> TwimlDocument | VoiceError | None:
        """A document from ``url``; None when the caller hung up meanwhile."""
        sending = self.webhooks.send(kind, url, method, params, self.domain.auth_token,
                                     self.fidelity)
        # A document answered inside the twin never waits, so it needs no race with hang-up.
        sent = await (sending if offline.handles(url) else self._until_ended(sending))
        if sent is None:
            return None
        exchange, outcome = sent
        self.call.add_webhook(exchange.as_record())
        if isinstance(outcome, VoiceError):
            return outcome
        return self._document(outcome)

    def _document(self, reply: Reply) -> TwimlDocument | VoiceError:
        wrong_type = check_twiml_reply(reply)
        if wrong_type is not None:
            return wrong_type
        if reply.content_type.lower().startswith("audio/"):  # Twilio plays audio answers
            return TwimlDocument(reply.url, [Verb("Play", {}, reply.url)])
        document = parse_twiml(reply.body, reply.url)
        if isinstance(document, TwimlDocument):
            for warning in document.warnings:
                self._alert(warning)
        return document

    async def _initial_document(self) -> TwimlDocument | None:
        voice_url = self.domain.voice_url
        params = self.facts.parameters("ringing")
        outcome = await self._fetch("voice", voice_url or "", self.domain.voice_method, params)
        if outcome is None or isinstance(outcome, TwimlDocument):
            return outcome
        return await self._fallback(outcome, (voice_url or "").split("#", 1)[0], params)

    async def _fallback(self, failure: VoiceError, failed_url: str,
                        params: list[tuple[str, str]]) -> TwimlDocument | None:
        """The fallback URL's document after ``failure``, or the caller hears that none came."""
        self._alert(failure)
        fallback = self.domain.voice_fallback_url
        if fallback:
            outcome = await self._fetch(
                "fallback", fallback, self.domain.voice_fallback_method,
                [*params, ("ErrorCode", str(failure.code)), ("ErrorUrl", failed_url)])
            if outcome is None or isinstance(outcome, TwimlDocument):
                return outcome
            failure = VoiceError(outcome.code, f"fallback: {outcome.detail}")
            self._alert(failure)
        await self._application_failed(failure)
        return None

    async def _unconfigured(self) -> TwimlDocument | None:
        """A domain without a voice URL (the ``no_voice_url`` setting; Twilio's behaviour is
        undocumented): by default a fetch that failed, so the fallback URL and then
        ``webhook_failure`` decide; ``answer-silent`` answers and waits for the hang-up."""
        if self.fidelity.no_voice_url == "answer-silent":
            self.call.note("the SIP domain has no voice_url: answered without TwiML "
                           "(no_voice_url=answer-silent)")
            await self.answer()
            await self.session.ended.wait()
            return None
        return await self._fallback(VoiceError(11200, "the SIP domain has no voice_url"), "",
                                    self.facts.parameters("ringing"))

    async def _application_failed(self, cause: VoiceError) -> None:
        """No usable TwiML at all: the ``webhook_failure`` setting says what the caller gets;
        a refusal carries the code of the failure that left the call without TwiML."""
        if self.ended:
            return
        if self.session.answered or self.fidelity.webhook_failure == "answer-error":
            await self.answer()
            await self.media.play(await media.speak(APPLICATION_ERROR_PROMPT),
                                  self.session.ended)
            await self.session.hangup()
            return
        before = len(self.call.alerts)
        await self.session.reject(500, "Server Internal Error", error=cause.header(),
                                  call_status="failed")
        # The node records the X-Twilio-Error it sends as an alert. The cause's own alert
        # above already says what failed; otherwise the node's stays and says what the caller got.
        if len(self.call.alerts) > before:
            if any(a.code == cause.code for a in self.call.alerts[:before]):
                self.call.alerts = self.call.alerts[:-1]
            else:
                self.call.alerts[-1].detail = ("no usable TwiML from the voice URL or its "
                                               "fallback: the call was refused with 500")

    # ------------------------------------------------------------------ executing
    async def _execute(self, document: TwimlDocument) -> TwimlDocument | None:
        for verb in document.verbs:
            if self.ended:
                return None
            outcome = await self._verb(verb, document)
            if outcome is STOP:
                return None
            if isinstance(outcome, TwimlDocument):
                return outcome
        return None

    async def _verb(self, verb: Verb, document: TwimlDocument) -> object:
        method = _VERB_METHODS.get(verb.name)
        if method is None:
            assert verb.name in NOT_EMULATED
            self.call.note(f"<{verb.name}> is not emulated by the twin: answered, skipped")
            await self.answer()
            return None
        return await getattr(self, method)(verb, document)

    def _resolve(self, document: TwimlDocument, target: str) -> str:
        if not target:
            return document.url
        if document.url.startswith("twiml:"):
            return target
        return urljoin(document.url, target)

    async def _fetch_next(self, kind: str, url: str, method: str,
                          extra: list[tuple[str, str]] = ()) -> object:
        """The document of an action or Redirect URL, or STOP after handling its failure."""
        params = [*self.facts.parameters(self.call_status), *extra]
        outcome = await self._fetch(kind, url, method or "POST", params)
        if outcome is None:
            return STOP
        if isinstance(outcome, VoiceError):
            failure = VoiceError(outcome.code, f"{kind}: {outcome.detail}")
            self._alert(failure)
            await self._application_failed(failure)
            return STOP
        return outcome

    async def _play_prompt(self, prompt: media.Prompt, loop: int, stop: asyncio.Event) -> None:
        for _ in range(loop):
            if stop.is_set() or self.ended:
                return
            await self.media.play(prompt, stop)

    @staticmethod
    def _loop(verb: Verb) -> int:
        raw = verb.attr("loop", "1")
        count = int(raw) if raw.isdigit() else 1
        return MAX_LOOP if count == 0 else count

    def _stop_event(self) -> asyncio.Event:
        """An event set when the caller hangs up; callers may set it themselves too."""
        stop = asyncio.Event()
        if self.ended:
            stop.set()
        else:
            waiter = asyncio.ensure_future(self.session.ended.wait())
            waiter.add_done_callback(lambda _: stop.set())
        return stop

    async def _say(self, verb: Verb, document: TwimlDocument,
                   stop: asyncio.Event | None = None) -> object:
        await self.answer()
        prompt = await media.speak(verb.text, verb.attr("language", "en-US"), verb.attr("voice"))
        # Without a stop of its own (a <Gather>'s), the prompt stops at the hang-up itself:
        # nothing else sets it, so no relay event and task are needed (as for <Pause>).
        await self._play_prompt(prompt, self._loop(verb), stop or self.session.ended)
        return None

    async def _play(self, verb: Verb, document: TwimlDocument,
                    stop: asyncio.Event | None = None) -> object:
        await self.answer()
        stop = stop or self.session.ended  # as in _say
        if verb.attr("digits"):
            await self.media.send_digits(verb.attr("digits"), stop)
            return None
        url = self._resolve(document, verb.text)
        await self._play_prompt(media.audio_for_url(url), self._loop(verb), stop)
        return None

    async def _pause(self, verb: Verb, document: TwimlDocument,
                     stop: asyncio.Event | None = None) -> object:
        await self.answer()  # [UNCONFIRMED] a first <Pause> answers (spec §4.4)
        seconds = int(verb.attr("length", "1") or 1)
        if stop is None:
            # Without a stop of its own (a <Gather>'s), the pause waits for the hang-up itself:
            # no second event and task to relay it, and the session's timed wait for the end.
            await self.session.wait_ended(seconds)
            return None
        if stop.is_set():
            return None
        # asyncio.timeout, not wait_for: no task of its own around the wait (wait_for makes one);
        # try/except rather than contextlib.suppress, whose three methods run for every pause
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            pass
        return None

    async def _hangup(self, verb: Verb, document: TwimlDocument) -> object:
        if not self.session.answered and self.fidelity.first_verb_hangup == "reject":
            await self.session.reject(404, "Not Found", call_status="no-answer")
            return STOP
        await self.answer()  # documented: a first <Hangup> still answers the call
        await self.session.hangup()
        return STOP

    async def _reject(self, verb: Verb, document: TwimlDocument) -> object:
        if self.session.answered:
            self._alert(VoiceError(12200, f"{document.url}: <Reject> after the call was "
                                          "answered; the call is hung up instead"))
            await self.session.hangup()
            return STOP
        if verb.attr("reason", "rejected") == "busy":
            await self.session.reject(486, "Busy Here", call_status="busy")
        else:
            await self.session.reject(404, "Not Found", call_status="no-answer")
        return STOP

    async def _redirect(self, verb: Verb, document: TwimlDocument) -> object:
        self.redirects += 1
        if self.redirects > int(self.fidelity.max_redirects):
            failure = VoiceError(11215, f"more than {self.fidelity.max_redirects} "
                                        f"<Redirect>s; the last one pointed at {verb.text}")
            self._alert(failure)
            await self._application_failed(failure)
            return STOP
        return await self._fetch_next("redirect", self._resolve(document, verb.text),
                                      verb.attr("method", "POST"))

    # ------------------------------------------------------------------ Gather
    async def _gather(self, verb: Verb, document: TwimlDocument) -> object:
        await self.answer()
        timeout = int(verb.attr("timeout", "5") or 5)
        finish_key = verb.attr("finishOnKey", "#")
        wanted = int(verb.attr("numDigits")) if verb.attr("numDigits") else None
        interrupt = self._stop_event()
        prompts = asyncio.ensure_future(self._prompts(verb, document, interrupt))
        digits, finished_on = "", ""
        try:
            first = asyncio.ensure_future(self.session.dtmf.get())
            await asyncio.wait({prompts, first}, return_when=asyncio.FIRST_COMPLETED)
            interrupt.set()  # a key press stops the prompt (bargeIn)
            await prompts
            if not first.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(first), timeout)
            key = first.result() if first.done() else None
            if not first.done():
                first.cancel()
            while key is not None and not self.ended:
                if finish_key and key in finish_key:
                    finished_on = key
                    break
                digits += key
                if wanted is not None and len(digits) >= wanted:
                    break
                key = await self._next_key(timeout)
        finally:
            prompts.cancel()
        if self.ended:
            return STOP
        if not digits and verb.attr("actionOnEmptyResult") != "true":
            return None  # no input: Twilio goes on with the next verb
        extra = [("Digits", digits)]
        if finished_on:
            extra.append(("FinishedOnKey", finished_on))
        return await self._fetch_next("action", self._resolve(document, verb.attr("action")),
                                      verb.attr("method", "POST"), extra)

    async def _prompts(self, verb: Verb, document: TwimlDocument, stop: asyncio.Event) -> None:
        for child in verb.children:
            if stop.is_set():
                return
            play = {"Say": self._say, "Play": self._play, "Pause": self._pause}[child.name]
            await play(child, document, stop)

    async def _next_key(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self._until_ended(self.session.dtmf.get()), timeout)
        except TimeoutError:
            return None

    # ------------------------------------------------------------------ Dial
    async def _dial(self, verb: Verb, document: TwimlDocument) -> object:
        on_bridge = verb.attr("answerOnBridge") == "true"
        if not on_bridge:
            await self.answer()
        ring_timeout = int(verb.attr("timeout", "30") or 30)
        time_limit = int(verb.attr("timeLimit", "14400") or 14400)
        child_sid = new_call_sid()
        outcome = DialOutcome("failed", None, None, 0, None)
        sips = [noun for noun in verb.children if noun.name == "Sip"]
        others = [noun.name for noun in verb.children if noun.name != "Sip"]
        if others or (not sips and verb.text):
            self.call.note(f"<Dial> to {', '.join(others) or 'a number'} is not emulated: "
                           "only <Sip> places a call")
        for noun in sips:
            if self.ended:
                break
            outcome = await self._dial_one(noun, verb, child_sid, ring_timeout, time_limit,
                                           on_bridge)
            if outcome.response_code is not None and 200 <= outcome.response_code < 300:
                break
        self.call.note(f"<Dial> {child_sid}: {outcome.status}"
                       f" ({outcome.response_code or 'no final response'})")
        action = verb.attr("action")
        if not action:
            return STOP if self.ended else None
        extra = outcome.parameters(child_sid)
        if self.ended:  # Twilio still reports the dial; what the action returns is ignored
            params = [*self.facts.parameters(self.call.status), *extra]
            exchange, _ = await self.webhooks.send(
                "action", self._resolve(document, action), verb.attr("method", "POST"), params,
                self.domain.auth_token, self.fidelity)
            self.call.add_webhook(exchange.as_record())
            return STOP
        return await self._fetch_next("action", self._resolve(document, action),
                                      verb.attr("method", "POST"), extra)

    async def _dial_one(self, noun: Verb, verb: Verb, child_sid: str, ring_timeout: float,
                        time_limit: float, on_bridge: bool) -> DialOutcome:
        target = parse_sip_target(noun.text)
        if isinstance(target, VoiceError):
            self._alert(target)
            return DialOutcome("failed", None, None, 0, None)
        for warning in target.warnings:
            self._alert(warning)
        lookup = make_lookup(self.session, str(self.fidelity.dial_dns_server))
        branches = await self._until_ended(
            branches_for(target, self.session, self.facts.account_sid, lookup))
        if branches is None:
            return DialOutcome("canceled", None, None, 0, None)
        if isinstance(branches, VoiceError):
            self._alert(branches)
            return DialOutcome("failed", None, None, 0, None)
        leg = DialLeg(self.session.region.address, self.session.outbound,
                      self._dial_from_uri(verb.attr("callerId")),
                      [("X-Twilio-CallSid", child_sid),
                       ("X-Twilio-AccountSid", self.facts.account_sid)],
                      Auth(noun.attr("username"), noun.attr("password"))
                      if noun.attr("username") else None,
                      ring_timeout, time_limit, self.session.ended,
                      on_answer=lambda: self._bridge_caller(on_bridge),
                      codecs=self._caller_codecs(),
                      srtp_to_secure_devices=self.fidelity.dial_secure_media == "srtp")
        outcome = await dial_sip(branches, leg, target.headers)
        self.call.note(*leg.notes)
        return outcome

    def _dial_from_uri(self, caller_id: str) -> str:
        if caller_id.startswith(("sip:", "sips:")):
            return caller_id
        user = caller_id or self.facts.from_.split(":", 1)[-1].split("@", 1)[0] or "twilio"
        host = (self.session.region.address if self.fidelity.dial_from_host == "edge-address"
                else self.domain.domain_name)
        return f"sip:{user}@{host}"

    async def _bridge_caller(self, answer_first: bool) -> media.MediaStream | None:
        if answer_first:
            await self.answer()
        return self.media if self.session.answered and not self.ended else None

    def _caller_codecs(self) -> tuple[str, ...]:
        """The caller's G.711 law first, so the relay needs no transcoding."""
        plan = self.media.plan
        if plan is not None:
            first = "PCMA" if plan.payload_type == media.PCMA else "PCMU"
        else:
            try:
                offer = self.session.invite.sdp
            except ValueError:
                offer = None
            names = [c.name.upper() for m in (offer.media if offer else ())
                     for c in m.codecs()]
            first = next((n for n in names if n in ("PCMU", "PCMA")), "PCMU")
        return (first, "PCMA" if first == "PCMU" else "PCMU")

    # ------------------------------------------------------------------ Record
    async def _record(self, verb: Verb, document: TwimlDocument) -> object:
        """Minimal: beep, listen until a finish key, maxLength or hang-up; no audio is kept."""
        await self.answer()
        stop = self._stop_event()
        if verb.attr("playBeep", "true") != "false":
            await self.media.play(media.tone(1000.0, 0.25), stop)
        max_length = min(int(verb.attr("maxLength", "3600") or 3600), RECORD_MAX_SECONDS)
        finish_keys = verb.attr("finishOnKey", "1234567890*#")
        began = time.monotonic()
        received_before = self.media.packets_received
        pressed = ""
        deadline = began + max_length
        while not self.ended and time.monotonic() < deadline:
            key = await self._next_key(max(0.0, deadline - time.monotonic()))
            if key is not None and key in finish_keys:
                pressed = key
                break
        duration = int(round(time.monotonic() - began))
        self.call.note(f"<Record>: {duration} s, "
                       f"{self.media.packets_received - received_before} RTP packets heard")
        action = verb.attr("action")
        if self.ended or not action:
            return STOP if self.ended else None
        recording_sid = "RE" + secrets.token_hex(16)
        extra = [
            ("RecordingSid", recording_sid),
            ("RecordingUrl", f"https://api.twilio.com/2010-04-01/Accounts/"
                             f"{self.facts.account_sid}/Recordings/{recording_sid}"),
            ("RecordingDuration", str(duration)),
            ("Digits", pressed or "hangup"),
        ]
        return await self._fetch_next("action", self._resolve(document, action),
                                      verb.attr("method", "POST"), extra)


class VoiceHandler:
    """The twin's voice layer: implements the node's ``CallHandler`` protocol."""

    def __init__(self, webhooks: WebhookClient | None = None) -> None:
        self.webhooks = webhooks or WebhookClient()
        self.media_ports = media.MediaPorts(media.kept_pairs_for_descriptor_limit())

    def run(self, session: CallSession) -> Coroutine[Any, Any, None]:
        # The run's own coroutine, not one awaiting it: a frame fewer at every step of the call.
        return CallRun(self.webhooks, session, self.media_ports).run()

    async def close(self) -> None:
        self.media_ports.close()
        await self.webhooks.close()
