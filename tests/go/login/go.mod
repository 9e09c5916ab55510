module hoptrace.test/login

go 1.26
