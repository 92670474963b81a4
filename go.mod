module github.com/roapproxy/roapproxy

go 1.26.8
