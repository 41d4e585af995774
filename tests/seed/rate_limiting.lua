-- Built-in rate limiting
ai.configure({
    rate_limit = {
        requests_per_minute = 60,
        tokens_per_minute = 40000
    }
})
