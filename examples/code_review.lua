-- sloth-runner example: an AI review of the last commit, with a triage and an alert.
-- Run it inside any git repository with at least two commits:
--     sloth-runner run -f examples/code_review.lua
--     sloth-runner run -f examples/code_review.lua --param base=main --param head=HEAD
--
-- The diff is scrubbed of secrets before it reaches the model (on by default). The triage is
-- always one of low/medium/high/critical; a high or critical finding sends an alert to the
-- webhook in SLOTH_ALERT_WEBHOOK (Slack-compatible), or prints it when none is set.

workflow.define("code_review", {
    description = "review the last commit, triage it, alert on serious findings",

    tasks = {
        task("collect")
            :description("what changed")
            :command(function(params)
                local base, head = params.base or "HEAD~1", params.head or "HEAD"
                local files = git.get_changed_files(base, head)
                local diff = git.get_diff(base, head)
                if #diff > 12000 then
                    diff = diff:sub(1, 12000) .. "\n[diff truncated]"
                end
                return true, #files .. " files changed", {files = files, diff = diff}
            end)
            :build(),

        task("review")
            :depends_on("collect")
            :timeout("5m")
            :command(function(params, deps)
                local ai = require("ai")
                local review = ai.complete({
                    prompt = "Review this diff for bugs, security problems and unclear code. "
                             .. "Be brief.\n\n" .. deps.collect.diff,
                    max_tokens = 200,
                    temperature = 0,
                })
                local triage = ai.decide({
                    analysis = review.text,
                    changed_files = deps.collect.files,
                })
                return true, "severity: " .. triage.severity, {
                    review = review.text, severity = triage.severity,
                    issue = triage.issue, actions = triage.actions,
                }
            end)
            :build(),

        task("alert")
            :depends_on("review")
            :run_if(function(params, deps)
                local s = deps.review.severity
                return s == "high" or s == "critical"
            end)
            :command(function(params, deps)
                local sent = notifications.send_alert(
                    "code review: " .. deps.review.issue, {severity = deps.review.severity})
                return true, sent.sent and "alert sent" or "alert printed"
            end)
            :build(),
    },
})
